"""Host emulation of the tensor-core attention kernel's data movement (kernels/cuda/
paged_attention_mma.cu), for checking its fragment index arithmetic without a GPU.

One CTA of paged_attention_mma_kernel (one split, contiguous keys; one decode token or
several causal prefill tokens per tile) is replayed lane by lane:
shared-memory layouts with their padding, q fragments, K fragments by 32-bit loads, the
mma.m16n8k16 register layouts of the PTX ISA, the partial-S exchange, the softmax with P
rounded to bf16, ldmatrix.x4.trans for V, the rescaled accumulators and the epilogue. The
result is compared with plain attention on the same values. Needs numpy (.venv); a run
takes a few seconds. Keep it in step with the kernel when its maps change.

Usage: .venv/bin/python tools/emulate_attention_mma.py
"""
import numpy as np
rng = np.random.default_rng(1)

def bf16(x):
    x = np.asarray(x, dtype=np.float32)
    u = x.view(np.uint32).astype(np.uint64)
    r = ((u + 0x7fff + ((u >> 16) & 1)) >> 16) & 0xffff
    return r.astype(np.uint16)
def f32(b): return (np.asarray(b, dtype=np.uint32) << 16).view(np.float32)

def run(D, rows, keys, scale, softcap, heads=None):
    """rows = tokens x heads (heads=None: one token); token i of the tile sits at position
    keys - tokens + i, so it sees keys [0, that position] (causal prefill rows)."""
    heads = heads or rows
    tokens = rows // heads
    row_pos = [keys - tokens + r // heads for r in range(rows)] + [-1] * (16 - rows)
    kKt = 16384 // (D*2); kRowBytes = D*2+16; KeyBlocks = kKt//8; DSplits = 8//KeyBlocks
    QkSteps = D//16//DSplits; PvCols = D//8; PvBlocks = PvCols//8; PvSteps = kKt//16
    QRow = D+8; PRow = kKt+8
    q = rng.uniform(-1,1,(rows,D)).astype(np.float32)
    K = f32(bf16(rng.uniform(-1,1,(keys,D))))
    V = f32(bf16(rng.uniform(-1,1,(keys,D))))
    # smem as uint16 arrays
    q_s = np.zeros((16*QRow,), np.uint16)
    for r in range(rows): q_s[r*QRow:r*QRow+D] = bf16(q[r])
    def lds32(arr, idx):  # returns two uint16 (lo, hi)
        assert idx % 2 == 0
        return (arr[idx], arr[idx+1])
    def mma(c, a, b):  # c: [32][4] f32, a: [32][4] pairs, b: [32][2] pairs
        A = np.zeros((16,16)); B = np.zeros((16,8))
        for l in range(32):
            g, t = l//4, l%4
            for i,(r,cc) in enumerate([(g,2*t),(g+8,2*t),(g,2*t+8),(g+8,2*t+8)]):
                A[r,cc], A[r,cc+1] = f32(a[l][i][0]), f32(a[l][i][1])
            for i,kk in enumerate([2*t, 2*t+8]):
                B[kk,g], B[kk+1,g] = f32(b[l][i][0]), f32(b[l][i][1])
        Cm = np.zeros((16,8))
        for l in range(32):
            g, t = l//4, l%4
            Cm[g,2*t],Cm[g,2*t+1],Cm[g+8,2*t],Cm[g+8,2*t+1] = c[l]
        Dm = A @ B + Cm
        out = []
        for l in range(32):
            g, t = l//4, l%4
            out.append([Dm[g,2*t],Dm[g,2*t+1],Dm[g+8,2*t],Dm[g+8,2*t+1]])
        return out
    def ldmatrix_x4_trans(smem_u16, elem_addr):  # elem_addr[l]: element index of the row start
        mats = []
        for i in range(4):
            M = np.zeros((8,8), np.uint16)
            for rr in range(8):
                a = elem_addr[8*i+rr]; assert (a*2) % 16 == 0
                M[rr] = smem_u16[a:a+8]
            mats.append(M)
        res = []
        for l in range(32):
            g, t = l//4, l%4
            res.append([(mats[i][2*t, g], mats[i][2*t+1, g]) for i in range(4)])
        return res
    # K/V tiles as uint16 arrays with padded rows
    ntiles = (keys + kKt - 1)//kKt
    row_m = [-np.inf]*16; row_l = [0.0]*16
    acc = [[[0.0]*4 for _ in range(PvBlocks)] for _ in range(256)]
    # q fragments
    qa = {}
    for tid in range(256):
        warp, lane = tid//32, tid%32; g, q4 = lane//4, lane%4
        kb, ds = warp % KeyBlocks, warp // KeyBlocks
        frs = []
        for i in range(QkSteps):
            lo = g*QRow + (ds*QkSteps+i)*16 + 2*q4; hi = lo + 8*QRow
            frs.append([lds32(q_s,lo), lds32(q_s,hi), lds32(q_s,lo+8), lds32(q_s,hi+8)])
        qa[tid] = frs
    for t in range(ntiles):
        t0 = t*kKt
        kt = np.zeros((kKt*kRowBytes//2,), np.uint16); vt = np.zeros_like(kt)
        for j in range(kKt):
            if t0+j < keys:
                kt[j*(kRowBytes//2):j*(kRowBytes//2)+D] = bf16(K[t0+j])
                vt[j*(kRowBytes//2):j*(kRowBytes//2)+D] = bf16(V[t0+j])
        s_s = np.zeros((DSplits*16*kKt,), np.float32)
        for warp in range(8):
            kb, ds = warp % KeyBlocks, warp // KeyBlocks
            s = [[0.0]*4 for _ in range(32)]
            for i in range(QkSteps):
                k0 = (ds*QkSteps+i)*16
                a = [qa[warp*32+l][i] for l in range(32)]
                b = []
                for l in range(32):
                    g, q4 = l//4, l%4
                    krow = (kb*8+g)*(kRowBytes//2) + 2*q4
                    b.append([lds32(kt, krow+k0), lds32(kt, krow+k0+8)])
                s = mma(s, a, b)
            for l in range(32):
                g, q4 = l//4, l%4
                dst = (ds*16+g)*kKt + kb*8 + 2*q4
                s_s[dst], s_s[dst+1] = s[l][0], s[l][1]
                s_s[dst+8*kKt], s_s[dst+8*kKt+1] = s[l][2], s[l][3]
        p_s = np.zeros((16*PRow,), np.uint16); row_alpha=[0.0]*16
        for r in range(16):
            xs = []
            for lane in range(32):
                x = -np.inf
                if lane < kKt:
                    v = sum(s_s[(k*16+r)*kKt+lane] for k in range(DSplits)) * scale
                    if softcap > 0: v = softcap*np.tanh(v/softcap)
                    kp = t0+lane
                    if kp < keys and kp <= row_pos[r]: x = v
                xs.append(x)
            m_old = row_m[r]; m_new = max(m_old, max(xs))
            ssum = 0.0
            for lane in range(32):
                bits = 0
                if xs[lane] != -np.inf: bits = int(bf16(np.exp(np.float32(xs[lane]-m_new))))
                if lane < kKt: p_s[r*PRow+lane] = bits
                ssum += float(f32(bits))
            alpha = 0.0 if m_old == -np.inf else np.exp(m_old-m_new)
            row_alpha[r]=alpha; row_l[r]=row_l[r]*alpha+ssum; row_m[r]=m_new
        for warp in range(8):
            for l in range(32):
                g = l//4
                for nb in range(PvBlocks):
                    a_ = acc[warp*32+l][nb]
                    a_[0]*=row_alpha[g]; a_[1]*=row_alpha[g]; a_[2]*=row_alpha[g+8]; a_[3]*=row_alpha[g+8]
            for k in range(PvSteps):
                pa = []
                addrs = []
                for l in range(32):
                    g, q4 = l//4, l%4
                    lo = g*PRow + k*16 + 2*q4; hi = lo + 8*PRow
                    pa.append([lds32(p_s,lo), lds32(p_s,hi), lds32(p_s,lo+8), lds32(p_s,hi+8)])
                    pv_key = (l&7) + ((l>>3)&1)*8; pv_col = warp*PvCols + (l>>4)*8
                    addrs.append((k*16+pv_key)*(kRowBytes//2) + pv_col)
                for pair in range(PvBlocks//2):
                    bb = ldmatrix_x4_trans(vt, [a+pair*16 for a in addrs])
                    c0 = [acc[warp*32+l][2*pair] for l in range(32)]
                    c1 = [acc[warp*32+l][2*pair+1] for l in range(32)]
                    d0 = mma(c0, pa, [[bb[l][0], bb[l][1]] for l in range(32)])
                    d1 = mma(c1, pa, [[bb[l][2], bb[l][3]] for l in range(32)])
                    for l in range(32):
                        acc[warp*32+l][2*pair] = d0[l]; acc[warp*32+l][2*pair+1] = d1[l]
    out = np.full((rows, D), np.nan)
    for tid in range(256):
        warp, lane = tid//32, tid%32; g, q4 = lane//4, lane%4
        for half in range(2):
            r = g+8*half
            if r >= rows: continue
            col = warp*PvCols + 2*q4
            inv = 1/row_l[r]
            for nb in range(PvBlocks):
                out[r, col+nb*8] = acc[tid][nb][2*half]*inv
                out[r, col+nb*8+1] = acc[tid][nb][2*half+1]*inv
    # reference
    S = (q @ K.T) * scale
    if softcap > 0: S = softcap*np.tanh(S/softcap)
    S = np.where(np.arange(keys)[None, :] <= np.array(row_pos[:rows])[:, None], S, -np.inf)
    P = np.exp(S - S.max(1, keepdims=True)); P /= P.sum(1, keepdims=True)
    ref = P @ V
    err = np.linalg.norm(out-ref)/np.linalg.norm(ref)
    print(f"D {D} rows {rows} keys {keys} softcap {softcap}: rel {err:.2e} nan {np.isnan(out).sum()}")
    return err

errors = [
    run(512, 8, 37, 2 / np.sqrt(512) * 4, 0),  # Gemma 4 global: a group of 8, 3 tiles
    run(256, 8, 70, 2 / np.sqrt(256) * 4, 0),
    run(256, 16, 33, 1.0, 50.0),  # 16 rows, soft-cap
    run(512, 5, 16, 0.2, 0),  # one full tile, padding rows
    run(256, 16, 70, 2 / np.sqrt(256) * 4, 0, heads=2),  # prefill: 8 tokens x 2 heads, causal
    run(512, 16, 40, 2 / np.sqrt(512) * 4, 30.0, heads=8),  # prefill: 2 tokens x 8 heads
]
# q is f32 here and rounded to bf16 by the kernel: about 2e-3 from plain attention. An index
# error gives order-1 errors.
raise SystemExit(0 if max(errors) < 1e-2 else 1)
