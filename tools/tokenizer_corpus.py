#!/usr/bin/env python3
"""A deterministic corpus of test strings for the tokenizer references.

`build_corpus(seed)` returns a list of (category, text) pairs, over 2,000 of them: ASCII
prose, source code, CJK, emoji (ZWJ sequences, flags, skin tones, keycaps), combining marks,
right-to-left and Indic scripts, whitespace runs (spaces, tabs, newlines, CR LF), leading and
trailing spaces, characters that need byte fallback (private use, rare planes, control
characters), special-token texts of Gemma 3 and Gemma 4 embedded in text, rendered chat
turns, and random Unicode from a seeded RNG. Every text is valid Unicode without surrogates,
so `text.encode("utf-8")` always works.

Imported by tools/make_tokenizer_reference.py; run alone it prints counts per category.
"""

import random
import sys

WORDS = (
    "the of and to in is was for that on as with by he at from his it an were are which this "
    "be or has had first one their its new after who they have two her she been other when "
    "there all during into school time may years more most only over city some world would "
    "where later up such used many can state about national out known university united then "
    "made between under also well both through part called received season year american "
    "county district playing several between tokenizer merge vocabulary sentence piece byte "
    "fallback gemma serving daemon request latency throughput kernel tensor quantized cache"
).split()

CODE = [
    "def f(x):\n    return x * 2\n",
    "for (int i = 0; i < n; ++i) {\n\tsum += a[i];\n}\n",
    "#include <vector>\n#include <string>\n\nint main() { return 0; }\n",
    '{"name": "sluice", "version": [0, 1, 0], "ok": true, "ratio": 0.75}',
    "<html><body><b>bold</b> <i>it</i> <table><tr><td>1</td></tr></table></body></html>",
    "SELECT id, name FROM users WHERE age > 21 ORDER BY name DESC LIMIT 10;",
    "if [ -f ~/.bashrc ]; then\n  source ~/.bashrc\nfi\n",
    "const add = (a, b) => a + b;\nexport default add;\n",
    "fn main() {\n    let v: Vec<u32> = (0..10).collect();\n    println!(\"{:?}\", v);\n}\n",
    "    if x:\n        y = [i ** 2 for i in range(10)]\n        print(f'{y!r}')\n",
    "class A:\n\tdef __init__(self):\n\t\tself.x = {'a': 1}\n",
    "x = 1_000_000\ny = 0xDEADBEEF\nz = 3.14159e-10\n",
    "<div class=\"note\">\n  <p>Hello</p>\n</div>",
    "$ ls -la /tmp && echo \"done\" | tee log.txt\n",
    "a[i][j] += b[i][k] * c[k][j];  // inner loop",
    "```python\nprint('hi')\n```\n",
    "   \t  mixed indentation\n\t    here\n",
    "key: value\nlist:\n  - one\n  - two\n",
    "// TODO(someone): fix this\n/* block\n   comment */",
    "lambda x: (x, x ** 2, x ** 3)",
]

CJK = [
    "你好，世界！", "今天天气很好，我们去公园散步吧。", "机器学习是人工智能的一个分支。",
    "東京は日本の首都です。", "ひらがなとカタカナ、そして漢字。", "こんにちは、元気ですか？",
    "안녕하세요, 세계!", "한국어 문장을 토큰화합니다.", "中文、日本語、한국어が混ざった文",
    "汉字简体字与繁體字", "「引用」『二重引用』【括弧】", "一二三四五六七八九十百千万亿",
    "龘靐齉爩", "ｆｕｌｌｗｉｄｔｈ　ＡＢＣ　１２３", "半角ｶﾀｶﾅ",
]

EMOJI = [
    "😀", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇺🇸🇯🇵🇫🇷", "🇩🇪", "1️⃣2️⃣3️⃣", "#️⃣", "❤️‍🔥", "🧑🏿‍💻",
    "👩‍❤️‍💋‍👨", "🤷‍♀️", "🐈‍⬛", "🦙", "🫠🫡🫥", "✨🎉🎊", "☕️", "⚽", "🏴󠁧󠁢󠁳󠁣󠁴󠁿", "👋🏻👋🏼👋🏽👋🏾👋🏿",
]

COMBINING = [
    "e\u0301", "cafe\u0301", "n\u0303", "a\u0308\u0304", "Z\u0335\u0321a\u0336l\u0337g\u0338o",
    "Tiếng Việt có dấu", "ḱṷṓn", "o\u0328\u0304", "\u0915\u094d\u0937", "A\u030a", "s\u0323\u0307",
    "ﬁ ﬂ ﬀ", "Å Å", "x\u20d7", "q\u0300\u0301\u0302\u0303\u0304\u0305",
]

SCRIPTS = [
    "مرحبا بالعالم", "اللغة العربية جميلة جداً", "שלום עולם", "עברית נכתבת מימין לשמאל",
    "नमस्ते दुनिया", "हिन्दी भाषा देवनागरी लिपि में लिखी जाती है", "สวัสดีชาวโลก", "ภาษาไทยไม่มีช่องว่าง",
    "Привет, мир!", "Съешь же ещё этих мягких французских булок", "Γειά σου Κόσμε", "Ελληνικά",
    "Բարեւ աշխարհ", "გამარჯობა", "ሰላም ልዑል", "வணக்கம் உலகம்", "ಕನ್ನಡ", "മലയാളം", "ગુજરાતી",
    "বাংলা ভাষা", "ꦧꦱꦗꦮ", "ᚠᚢᚦᚨᚱᚲ", "Ελληνικά και English mixed", "עברית and English",
    "السلام عليكم 123 hello", "Ἀρχιμήδης", "ⲕⲏⲙⲉ", "ᠮᠣᠩᠭᠣᠯ", "ພາສາລາວ", "ខ្មែរ",
]

RARE = [
    "\ue000\ue001\uf8ff", "\U000f0000", "\U0010fffd", "𝐀𝐁𝐂 𝕏𝕐ℤ", "𓀀𓀁𓀂", "𐍈𐌰𐌹", "🜁🜂🜃",
    "\x00", "\x01\x02\x03", "a\x07b", "\x1b[31mred\x1b[0m", "\x7f", "tab\x0bvt\x0cff",
    "\u200b\u200c\u200d", "\ufeffBOM", "\u2028\u2029", "\u00ad", "\ufffd", "\U0001f9ff\U0001fa70",
    "\u0378\u0379", "\u2e80\u2e81", "\U00020000\U0002a6d6", "\U000e0001\U000e0020",
    "\u180e", "\u3000", "\xa0nbsp\xa0", "\u2581already escaped\u2581", "\u2581\u2581 \u2581",
]

SPECIALS = [
    "<start_of_turn>", "<end_of_turn>", "<bos>", "<eos>", "<pad>", "<unk>", "<mask>",
    "[multimodal]", "<unused0>", "<unused42>", "<unused6241>", "<start_of_image>", "<end_of_image>",
    "<b>", "</b>", "<table>", "</s>", "<s>", "<code>", "<|turn>", "<turn|>", "<|channel>",
    "<channel|>", "<|tool_call>", "<tool_call|>", "<|tool_response>", "<tool_response|>",
    '<|"|>', "<|think|>", "<|tool>", "<tool|>", "<|image|>", "<|audio|>", "<0x41>", "<0xZZ>",
]

PARTIALS = [
    "<start_of_tur", "start_of_turn>", "<<bos>>", "<bos<bos>>", "<end_of_turn", "</start_of_turn>",
    "<BOS>", "< bos >", "<bos >", "<eos><eos><eos>", "<|turn", "turn|>", "<|turn>|>",
]


def _prose(rng, n_words):
    words = [rng.choice(WORDS) for _ in range(n_words)]
    if words:
        words[0] = words[0].capitalize()
    text = " ".join(words)
    return text + rng.choice([".", "!", "?", "", ",", ";", "..."])


def _random_unicode(rng, length):
    ranges = [
        (0x20, 0x7E), (0xA0, 0x24F), (0x370, 0x3FF), (0x400, 0x4FF), (0x590, 0x6FF),
        (0x900, 0x97F), (0xE00, 0xE7F), (0x1100, 0x11FF), (0x2000, 0x206F), (0x2190, 0x23FF),
        (0x2500, 0x27BF), (0x3040, 0x30FF), (0x4E00, 0x9FFF), (0xAC00, 0xD7A3), (0xE000, 0xF8FF),
        (0xF900, 0xFAFF), (0xFE00, 0xFE0F), (0xFF00, 0xFFEF), (0x10000, 0x1007F),
        (0x1D400, 0x1D7FF), (0x1F300, 0x1FAFF), (0x20000, 0x2A6DF), (0xE0000, 0xE007F),
        (0xF0000, 0xF00FF), (0x0, 0x1F),
    ]
    out = []
    for _ in range(length):
        lo, hi = rng.choice(ranges)
        out.append(chr(rng.randint(lo, hi)))
    return "".join(out)


def _whitespace(rng):
    parts = []
    for _ in range(rng.randint(1, 6)):
        kind = rng.random()
        if kind < 0.3:
            parts.append(" " * rng.randint(1, 40))
        elif kind < 0.5:
            parts.append("\n" * rng.randint(1, 40))
        elif kind < 0.65:
            parts.append("\t" * rng.randint(1, 35))
        elif kind < 0.75:
            parts.append("\r\n" * rng.randint(1, 5))
        else:
            parts.append(rng.choice(WORDS))
    return "".join(parts)


def build_corpus(seed=1234):
    rng = random.Random(seed)
    items = [("empty", ""), ("ascii", " "), ("ascii", "a"), ("ascii", "Hello world"),
             ("ascii", " Hello world"), ("ascii", "Hello world "), ("ascii", "  Hello  world  ")]

    for _ in range(320):
        items.append(("prose", _prose(rng, rng.randint(1, 40))))
    for _ in range(40):  # paragraphs with line breaks
        items.append(("prose", "\n".join(_prose(rng, rng.randint(3, 20)) for _ in range(rng.randint(2, 5)))))
    for c in CODE:
        items.append(("code", c))
    for _ in range(180):
        a, b = rng.sample(CODE, 2)
        items.append(("code", a + rng.choice(["\n", "\n\n", "", "    ", "\t"]) + b))
    for c in CJK:
        items.append(("cjk", c))
    for _ in range(140):
        items.append(("cjk", "".join(rng.choice(CJK) for _ in range(rng.randint(1, 3))) +
                      rng.choice(["", " ", " and English text", "123", "。"])))
    for e in EMOJI:
        items.append(("emoji", e))
    for _ in range(140):
        items.append(("emoji", rng.choice(["", "I feel ", "ok "]) +
                      "".join(rng.choice(EMOJI) for _ in range(rng.randint(1, 5))) +
                      rng.choice(["", " today", "!", "  "])))
    for c in COMBINING:
        items.append(("combining", c))
    for _ in range(85):
        items.append(("combining", rng.choice(WORDS) + "".join(
            chr(rng.randint(0x300, 0x36F)) for _ in range(rng.randint(1, 6))) + " " + rng.choice(COMBINING)))
    for s in SCRIPTS:
        items.append(("scripts", s))
    for _ in range(170):
        items.append(("scripts", " ".join(rng.choice(SCRIPTS) for _ in range(rng.randint(1, 3)))))
    for _ in range(200):
        items.append(("whitespace", _whitespace(rng)))
    for n in (1, 2, 3, 7, 31, 32, 33, 50):
        items.append(("whitespace", " " * n))
        items.append(("whitespace", "\n" * n))
        items.append(("whitespace", "\t" * n))
        items.append(("whitespace", " " * n + "x" + " " * n))
    # Repeats: equal-score pairs side by side, where the leftmost-first tie-break decides.
    for unit in ("a", "x", "ab", "!", ".", "-", "=", "0", "1", "一", "😀", "▁"):
        for k in (2, 3, 4, 5, 7, 9, 12):
            items.append(("repeats", unit * k))
            items.append(("repeats", " " + unit * k + " z"))
    for r in RARE:
        items.append(("byte_fallback", r))
    for _ in range(120):
        items.append(("byte_fallback", rng.choice(WORDS) + rng.choice(RARE) + rng.choice(["", " ", "\n"]) +
                      "".join(chr(rng.randint(0, 0x1F)) for _ in range(rng.randint(0, 3)))))
    for s in SPECIALS + PARTIALS:
        items.append(("special", s))
        items.append(("special", "text " + s + " text"))
    for _ in range(140):
        pieces = []
        for _ in range(rng.randint(1, 6)):
            pieces.append(rng.choice(SPECIALS + PARTIALS) if rng.random() < 0.5 else
                          rng.choice(WORDS + ["\n", " ", "  ", "\n\n", ""]))
        items.append(("special", "".join(pieces)))
    for _ in range(60):  # rendered chat turns (Gemma 3 and Gemma 4 markers)
        sys_text = _prose(rng, rng.randint(2, 10))
        user = _prose(rng, rng.randint(2, 15))
        if rng.random() < 0.5:
            items.append(("chat", f"<bos><start_of_turn>user\n{sys_text}\n\n{user}<end_of_turn>\n"
                                  "<start_of_turn>model\n"))
        else:
            items.append(("chat", f"<bos><|turn>system\n{sys_text}<turn|>\n<|turn>user\n{user}"
                                  "<turn|>\n<|turn>model\n<|channel>thought\n<channel|>"))
    for _ in range(400):
        items.append(("random", _random_unicode(rng, rng.randint(1, 40))))
    for _ in range(80):
        kind = rng.random()
        if kind < 0.3:
            items.append(("numbers", " ".join(str(rng.randint(0, 10 ** rng.randint(1, 12))) for _ in range(rng.randint(1, 8)))))
        elif kind < 0.6:
            items.append(("numbers", f"https://example.com/{rng.choice(WORDS)}?q={rng.randint(0, 999)}&x=y#frag"))
        else:
            items.append(("numbers", f"$E = mc^2$, ∑_{{i=1}}^{{n}} i = n(n+1)/2, π ≈ {rng.random():.6f}"))
    # A few long texts (the fixture must stay small, so only a handful).
    items.append(("long", " ".join(_prose(rng, 30) for _ in range(12))))
    items.append(("long", "a" * 3000))
    items.append(("long", "ab" * 1500))
    items.append(("long", "".join(rng.choice(CJK) for _ in range(60))))
    items.append(("long", " " * 500 + "\n" * 200 + "\t" * 100))
    items.append(("long", "".join(rng.choice(EMOJI) for _ in range(150))))
    return items


if __name__ == "__main__":
    corpus = build_corpus()
    counts = {}
    for cat, _ in corpus:
        counts[cat] = counts.get(cat, 0) + 1
    for cat, n in sorted(counts.items()):
        print(f"{cat:14s} {n}")
    print(f"{'total':14s} {len(corpus)}")
    sys.exit(0)
