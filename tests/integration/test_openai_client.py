"""The official `openai` client against `sluice serve`: what an OpenAI user sees.

Two servers: the tiny fixture (no tokenizer, so completions with token-id prompts; the
generated ids come back in the extension field choices[].token_ids) and, when the set-up
placed it, the default 270M GGUF (text, chat, stop strings, logprobs with real tokens). The
270M generates a few tokens per second on 2 cores, so its requests ask for a handful.
"""

import random

import openai
import pytest

from daemon import NAME_270M, TINY_MODEL, TINY_NAME, request

TINY_VOCAB = 512
BLOCK = 16  # --block-size default: prefix-cache hits come in whole blocks


def client_for(d, api_key="sk-unused"):
    # No retries: a test must see the first answer, not a retried one.
    return openai.OpenAI(base_url=d.base_url + "/v1", api_key=api_key, max_retries=0, timeout=30)


@pytest.fixture(scope="module")
def tc(tiny):
    return client_for(tiny)


@pytest.fixture(scope="module")
def big(serve_module, model_270m):
    # --max-model-len 512 makes the context check cheap to reach.
    return serve_module(model_270m, "--max-model-len", "512")


@pytest.fixture(scope="module")
def bc(big):
    return client_for(big)


def ids_of(choice):
    ids = getattr(choice, "token_ids", None)
    assert isinstance(ids, list), f"no token_ids extension field: {choice}"
    return ids


def random_prompt(n, seed):
    rng = random.Random(seed)
    return [2] + [rng.randrange(3, TINY_VOCAB) for _ in range(n - 1)]


def check_usage(usage, prompt, completion):
    assert usage.prompt_tokens == prompt, usage
    assert usage.completion_tokens == completion, usage
    assert usage.total_tokens == prompt + completion, usage


# ---- models -----------------------------------------------------------------------------

def test_models_list_and_retrieve(tc):
    models = tc.models.list()
    assert [m.id for m in models.data] == [TINY_NAME]
    assert models.data[0].object == "model"
    card = tc.models.retrieve(TINY_NAME)
    assert card.id == TINY_NAME and card.object == "model" and isinstance(card.created, int)
    assert card.owned_by
    with pytest.raises(openai.NotFoundError) as e:
        tc.models.retrieve("no-such-model")
    assert e.value.status_code == 404
    assert e.value.code == "model_not_found" and e.value.param == "model"
    assert e.value.type == "invalid_request_error"


# ---- completions on the tiny fixture ----------------------------------------------------

def test_completion_shape(tc):
    r = tc.completions.create(model=TINY_NAME, prompt=[2, 17, 300], max_tokens=4,
                              extra_body={"ignore_eos": True})
    assert r.id.startswith("cmpl-") and r.object == "text_completion" and r.model == TINY_NAME
    assert isinstance(r.created, int)
    assert len(r.choices) == 1
    c = r.choices[0]
    assert c.index == 0 and c.text == "" and c.finish_reason == "length" and c.logprobs is None
    ids = ids_of(c)
    assert len(ids) == 4 and all(0 <= t < TINY_VOCAB for t in ids)
    check_usage(r.usage, 3, 4)


def test_completion_stream_with_usage(tc):
    chunks = list(tc.completions.create(
        model=TINY_NAME, prompt=[2, 17, 300], max_tokens=5, stream=True,
        stream_options={"include_usage": True}, extra_body={"ignore_eos": True}))
    assert len({c.id for c in chunks}) == 1 and chunks[0].id.startswith("cmpl-")
    assert all(c.object == "text_completion" for c in chunks)
    *body, last = chunks
    # Every chunk but the last carries usage null; the last has no choices and the usage.
    assert all(c.usage is None for c in body)
    assert last.choices == []
    check_usage(last.usage, 3, 5)
    ids = [t for c in body for ch in c.choices for t in ids_of(ch)]
    assert len(ids) == 5
    reasons = [ch.finish_reason for c in body for ch in c.choices if ch.finish_reason]
    assert reasons == ["length"]


def test_completion_stream_without_usage(tc):
    chunks = list(tc.completions.create(model=TINY_NAME, prompt=[2, 9], max_tokens=3,
                                        stream=True, extra_body={"ignore_eos": True}))
    assert chunks and all(c.usage is None for c in chunks)
    assert sum(len(ids_of(ch)) for c in chunks for ch in c.choices) == 3


def test_greedy_stream_matches_non_stream(tc):
    args = dict(model=TINY_NAME, prompt=[2, 40, 41, 42], max_tokens=12, temperature=0,
                extra_body={"ignore_eos": True})
    whole = ids_of(tc.completions.create(**args).choices[0])
    streamed = [t for c in tc.completions.create(stream=True, **args) for ch in c.choices
                for t in ids_of(ch)]
    assert streamed == whole


def test_n2_and_two_prompts(tc):
    r = tc.completions.create(model=TINY_NAME, prompt=[[2, 17], [2, 5, 9]], max_tokens=3, n=2,
                              seed=7, extra_body={"ignore_eos": True})
    assert [c.index for c in r.choices] == [0, 1, 2, 3]
    assert all(len(ids_of(c)) == 3 and c.finish_reason == "length" for c in r.choices)
    check_usage(r.usage, 5, 12)


def test_n2_choices_differ_with_a_seed(tc):
    # Choice i samples with seed + i: the two choices of one prompt are not copies.
    r = tc.completions.create(model=TINY_NAME, prompt=[2, 17], max_tokens=16, n=2, seed=11,
                              temperature=1, extra_body={"ignore_eos": True})
    assert ids_of(r.choices[0]) != ids_of(r.choices[1])


def test_n2_stream(tc):
    chunks = list(tc.completions.create(model=TINY_NAME, prompt=[2, 3], max_tokens=6, n=2,
                                        stream=True, extra_body={"ignore_eos": True}))
    per = {0: 0, 1: 0}
    finished = {}
    for c in chunks:
        for ch in c.choices:
            per[ch.index] += len(ids_of(ch))
            if ch.finish_reason:
                assert ch.index not in finished, "two finish reasons for one choice"
                finished[ch.index] = ch.finish_reason
    assert per == {0: 6, 1: 6} and finished == {0: "length", 1: "length"}


def test_seed_reproducible(tc):
    def sample(seed, stream=False):
        args = dict(model=TINY_NAME, prompt=[2, 100, 200], max_tokens=16, temperature=1,
                    seed=seed, extra_body={"ignore_eos": True})
        if stream:
            return [t for c in tc.completions.create(stream=True, **args) for ch in c.choices
                    for t in ids_of(ch)]
        return ids_of(tc.completions.create(**args).choices[0])

    first = sample(1234)
    assert sample(1234) == first
    assert sample(1234, stream=True) == first
    assert sample(4321) != first


def test_server_seed_makes_unseeded_requests_reproducible(serve):
    # --seed: requests without a seed draw theirs from one stream, in admission order; two
    # servers started with the same --seed answer the same sequence of requests alike, and
    # a request's own seed still wins.
    def run(*flags):
        c = client_for(serve(TINY_MODEL, "--threads", "1", *flags))
        out = []
        for prompt in ([2, 100, 200], [2, 7], [2, 100, 200]):
            r = c.completions.create(model=TINY_NAME, prompt=prompt, max_tokens=12, temperature=1,
                                     extra_body={"ignore_eos": True})
            out.append(ids_of(r.choices[0]))
        own = c.completions.create(model=TINY_NAME, prompt=[2, 100, 200], max_tokens=12,
                                   temperature=1, seed=1234, extra_body={"ignore_eos": True})
        return out, ids_of(own.choices[0])

    a, own_a = run("--seed", "7")
    b, own_b = run("--seed", "7")
    c, own_c = run("--seed", "8")
    assert a == b
    assert a[0] != a[2], "the same prompt twice drew the same seed"
    assert c != a
    assert own_a == own_b == own_c


def test_allowed_origins_cors(serve):
    d = serve(TINY_MODEL, "--threads", "1", "--allowed-origins",
              "https://app.example,http://localhost:3000")
    pre = request(d.host, d.port, "OPTIONS", "/v1/completions",
                  headers={"Origin": "http://localhost:3000",
                           "Access-Control-Request-Method": "POST",
                           "Access-Control-Request-Headers": "authorization, content-type"})
    assert pre.status == 204, pre
    assert pre.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
    assert "POST" in pre.headers["Access-Control-Allow-Methods"]
    assert pre.headers["Access-Control-Allow-Headers"] == "authorization, content-type"
    r = request(d.host, d.port, "POST", "/v1/completions",
                body='{"prompt": [2, 17], "max_tokens": 2}', headers={"Origin": "https://app.example"})
    assert r.status == 200 and r.headers["Access-Control-Allow-Origin"] == "https://app.example"
    other = request(d.host, d.port, "POST", "/v1/completions",
                    body='{"prompt": [2, 17], "max_tokens": 2}',
                    headers={"Origin": "https://evil.example"})
    assert other.status == 200 and "Access-Control-Allow-Origin" not in other.headers
    refused = request(d.host, d.port, "OPTIONS", "/v1/completions",
                      headers={"Origin": "https://evil.example",
                               "Access-Control-Request-Method": "POST"})
    assert refused.status == 403, refused


def test_cached_tokens_on_a_repeated_prompt(tc):
    prompt = random_prompt(4 * BLOCK + 5, seed=random.randrange(1 << 30))
    cold = tc.completions.create(model=TINY_NAME, prompt=prompt, max_tokens=2)
    details = cold.usage.prompt_tokens_details
    assert details is None or details.cached_tokens in (0, None), cold.usage
    warm = tc.completions.create(model=TINY_NAME, prompt=prompt, max_tokens=2)
    details = warm.usage.prompt_tokens_details
    assert details is not None, f"usage has no prompt_tokens_details: {warm.usage}"
    # At least the first four whole blocks are resident; never the whole prompt (the last
    # token is always computed).
    assert 4 * BLOCK <= details.cached_tokens < len(prompt), warm.usage


def test_completion_logprobs_token_ids(tc):
    r = tc.completions.create(model=TINY_NAME, prompt=[2, 17, 300], max_tokens=4, logprobs=2,
                              extra_body={"ignore_eos": True})
    lp = r.choices[0].logprobs
    assert lp is not None, "logprobs asked for, none returned"
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == \
        len(lp.text_offset) == 4
    for chosen, top in zip(lp.token_logprobs, lp.top_logprobs):
        assert chosen <= 0.0
        # k alternatives, plus the sampled token when it is not among them (vLLM).
        assert 2 <= len(top) <= 3 and all(v <= 0.0 for v in top.values())
        assert max(top.values()) >= chosen - 1e-4


# ---- errors as the client's own exceptions ----------------------------------------------

@pytest.mark.parametrize("kwargs,param", [
    (dict(temperature=5), "temperature"),
    (dict(top_p=1.5), "top_p"),
    (dict(n=0), "n"),
    (dict(max_tokens=0), "max_tokens"),
    (dict(extra_body={"top_k": -5}), "top_k"),
])
def test_bad_params_are_bad_request_errors(tc, kwargs, param):
    with pytest.raises(openai.BadRequestError) as e:
        tc.completions.create(model=TINY_NAME, prompt=[2, 17], **{"max_tokens": 2, **kwargs})
    assert e.value.status_code == 400
    assert e.value.param == param and e.value.type == "invalid_request_error"
    assert e.value.request_id


def test_context_length_exceeded(tc):
    with pytest.raises(openai.BadRequestError) as e:
        tc.completions.create(model=TINY_NAME, prompt=[2] * 200, max_tokens=100)
    assert e.value.code == "context_length_exceeded" and e.value.param == "prompt"
    assert e.value.body["message"] == (
        "This model's maximum context length is 256 tokens. However, you requested 300 tokens "
        "(200 in the prompt, 100 in the completion). Please reduce the length of the prompt or "
        "completion.")


def test_unknown_model_is_not_found(tc):
    with pytest.raises(openai.NotFoundError) as e:
        tc.completions.create(model="no-such-model", prompt=[2], max_tokens=1)
    assert e.value.code == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        tc.chat.completions.create(model="no-such-model",
                                   messages=[{"role": "user", "content": "hi"}])


def test_chat_without_a_tokenizer_is_a_bad_request(tc):
    with pytest.raises(openai.BadRequestError) as e:
        tc.chat.completions.create(model=TINY_NAME, messages=[{"role": "user", "content": "hi"}])
    assert e.value.param == "messages"


def test_stream_errors_raise_before_the_stream(tc):
    # A request refused at validation is a plain 400, not a 200 stream carrying an error.
    with pytest.raises(openai.BadRequestError):
        tc.completions.create(model=TINY_NAME, prompt=[2], max_tokens=1, stream=True,
                              temperature=-1)


def test_api_key(serve):
    d = serve(TINY_MODEL, "--threads", "1", "--api-key", "sk-right-key")
    with pytest.raises(openai.AuthenticationError) as e:
        client_for(d, "sk-wrong-key").models.list()
    assert e.value.status_code == 401 and e.value.type == "authentication_error"
    with pytest.raises(openai.AuthenticationError):
        client_for(d, "sk-wrong-key").completions.create(model=TINY_NAME, prompt=[2],
                                                         max_tokens=1)
    with pytest.raises(openai.AuthenticationError):
        client_for(d, "sk-right-keyX").models.list()
    good = client_for(d, "sk-right-key")
    assert [m.id for m in good.models.list().data] == [TINY_NAME]
    r = good.completions.create(model=TINY_NAME, prompt=[2], max_tokens=1)
    assert r.usage.completion_tokens == 1
    # The auth matrix without a tenants file: probes and metrics open, the API keyed.
    for path in ("/health", "/ready", "/version", "/metrics"):
        assert request(d.host, d.port, "GET", path).status == 200, path
    for method, path in (("GET", "/v1/models"), ("GET", f"/v1/models/{TINY_NAME}"),
                         ("POST", "/v1/completions"), ("POST", "/v1/chat/completions"),
                         ("POST", "/tokenize"), ("POST", "/detokenize")):
        for headers in ({}, {"Authorization": "Bearer sk-wrong-key"},
                        {"Authorization": "sk-right-key"}, {"Authorization": "Basic sk-right-key"}):
            r = request(d.host, d.port, method, path, "{}" if method == "POST" else None, headers)
            assert r.status == 401, (method, path, headers, r)


# ---- the 270M: text, chat, stop strings, logprobs ---------------------------------------

CHAT = [{"role": "user", "content": "Name three colours."}]


def test_chat_completion(bc):
    r = bc.chat.completions.create(model=NAME_270M, messages=CHAT, max_tokens=5, temperature=0)
    assert r.id.startswith("chatcmpl-") and r.object == "chat.completion" and r.model == NAME_270M
    c = r.choices[0]
    assert c.index == 0 and c.message.role == "assistant" and c.message.content
    assert c.finish_reason in ("length", "stop") and c.logprobs is None
    assert r.usage.completion_tokens <= 5 and r.usage.prompt_tokens > 0
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_chat_stream_matches_non_stream(bc):
    args = dict(model=NAME_270M, messages=CHAT, max_tokens=5, temperature=0)
    whole = bc.chat.completions.create(**args)
    chunks = list(bc.chat.completions.create(stream=True,
                                             stream_options={"include_usage": True}, **args))
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(ch.delta.role in (None, "assistant") for c in chunks[1:] for ch in c.choices)
    text = "".join(ch.delta.content or "" for c in chunks for ch in c.choices)
    assert text == whole.choices[0].message.content
    assert [ch.finish_reason for c in chunks for ch in c.choices if ch.finish_reason] == \
        [whole.choices[0].finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert chunks[-1].usage.prompt_tokens == whole.usage.prompt_tokens


def test_chat_n2(bc):
    r = bc.chat.completions.create(model=NAME_270M, messages=CHAT, max_tokens=3, n=2, seed=5,
                                   temperature=1)
    assert [c.index for c in r.choices] == [0, 1]
    assert all(c.message.role == "assistant" for c in r.choices)


def test_chat_seed_reproducible(bc):
    args = dict(model=NAME_270M, messages=[{"role": "user", "content": "Tell me a story."}],
                max_tokens=6, temperature=1, seed=424242)
    first = bc.chat.completions.create(**args).choices[0].message.content
    assert bc.chat.completions.create(**args).choices[0].message.content == first


def test_text_completion_stop(bc):
    prompt = "The capital of France is"
    greedy = bc.completions.create(model=NAME_270M, prompt=prompt, max_tokens=8, temperature=0)
    text = greedy.choices[0].text
    assert greedy.choices[0].finish_reason == "length" and len(text) >= 8, text
    stop = text[4:7]
    prefix = text.split(stop)[0]
    r = bc.completions.create(model=NAME_270M, prompt=prompt, max_tokens=8, temperature=0,
                              stop=[stop, "never-seen-xyz"])
    assert r.choices[0].text == prefix and r.choices[0].finish_reason == "stop"
    streamed = list(bc.completions.create(model=NAME_270M, prompt=prompt, max_tokens=8,
                                          temperature=0, stop=stop, stream=True))
    assert "".join(ch.text for c in streamed for ch in c.choices) == prefix
    assert [ch.finish_reason for c in streamed for ch in c.choices if ch.finish_reason] == ["stop"]


def test_chat_stop(bc):
    args = dict(model=NAME_270M, messages=CHAT, max_tokens=6, temperature=0)
    text = bc.chat.completions.create(**args).choices[0].message.content
    assert len(text) >= 4, text
    stop = text[2:4]
    r = bc.chat.completions.create(stop=stop, **args)
    assert r.choices[0].message.content == text.split(stop)[0]
    assert r.choices[0].finish_reason == "stop"


def test_chat_logprobs(bc):
    r = bc.chat.completions.create(model=NAME_270M, messages=CHAT, max_tokens=4, temperature=0,
                                   logprobs=True, top_logprobs=3,
                                   extra_body={"ignore_eos": True})
    lp = r.choices[0].logprobs
    assert lp is not None and lp.content is not None, "logprobs asked for, none returned"
    assert len(lp.content) == r.usage.completion_tokens == 4
    for t in lp.content:
        assert isinstance(t.token, str) and t.logprob <= 0.0
        assert isinstance(t.bytes, list) and all(0 <= b < 256 for b in t.bytes)
        assert len(t.top_logprobs) == 3
        tops = [x.logprob for x in t.top_logprobs]
        assert tops == sorted(tops, reverse=True) and all(v <= 0.0 for v in tops)
        # Greedy: the chosen token is the most likely one.
        assert t.token == t.top_logprobs[0].token and abs(t.logprob - tops[0]) < 1e-4
    # The tokens' bytes spell the content.
    assert b"".join(bytes(t.bytes) for t in lp.content).decode() == r.choices[0].message.content


def test_chat_logprobs_stream(bc):
    chunks = list(bc.chat.completions.create(
        model=NAME_270M, messages=CHAT, max_tokens=3, temperature=0, logprobs=True,
        top_logprobs=2, stream=True, extra_body={"ignore_eos": True}))
    entries = [t for c in chunks for ch in c.choices if ch.logprobs and ch.logprobs.content
               for t in ch.logprobs.content]
    assert len(entries) == 3
    assert all(len(t.top_logprobs) == 2 and t.logprob <= 0.0 for t in entries)


def test_chat_logprobs_default_top(bc):
    # logprobs true without top_logprobs: each token's own logprob, no alternatives.
    r = bc.chat.completions.create(model=NAME_270M, messages=CHAT, max_tokens=2, temperature=0,
                                   logprobs=True, extra_body={"ignore_eos": True})
    content = r.choices[0].logprobs.content
    assert len(content) == 2 and all(t.top_logprobs == [] for t in content)


def test_text_completion_logprobs(bc):
    r = bc.completions.create(model=NAME_270M, prompt="One, two, three,", max_tokens=4,
                              temperature=0, logprobs=2, extra_body={"ignore_eos": True})
    c = r.choices[0]
    lp = c.logprobs
    assert lp is not None, "logprobs asked for, none returned"
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == \
        len(lp.text_offset) == 4
    assert "".join(lp.tokens) == c.text
    for i, (tok, chosen, top) in enumerate(zip(lp.tokens, lp.token_logprobs, lp.top_logprobs)):
        assert chosen <= 0.0 and 2 <= len(top) <= 3
        assert tok in top and abs(top[tok] - chosen) < 1e-4  # greedy: the best one
        if i:
            assert lp.text_offset[i] == lp.text_offset[i - 1] + len(lp.tokens[i - 1])


def test_echo(bc):
    prompt = "Roses are red,"
    r = bc.completions.create(model=NAME_270M, prompt=prompt, max_tokens=2, temperature=0,
                              echo=True)
    assert r.choices[0].text.startswith(prompt)


def test_echo_with_logprobs(bc):
    prompt = "Roses are red,"
    r = bc.completions.create(model=NAME_270M, prompt=prompt, max_tokens=2, temperature=0,
                              echo=True, logprobs=1, extra_body={"ignore_eos": True})
    c = r.choices[0]
    assert c.text.startswith(prompt)
    lp = c.logprobs
    # One entry per prompt token (the first has no logprob: nothing precedes it) and per
    # generated token.
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == \
        r.usage.prompt_tokens + r.usage.completion_tokens
    assert lp.token_logprobs[0] is None
    assert all(v is not None and v <= 0.0 for v in lp.token_logprobs[1:])


def test_cached_tokens_on_a_repeated_chat(bc):
    messages = [{"role": "system", "content": "You are a terse assistant. " * 12},
                {"role": "user", "content": "Say yes."}]
    bc.chat.completions.create(model=NAME_270M, messages=messages, max_tokens=1)
    r = bc.chat.completions.create(model=NAME_270M, messages=messages, max_tokens=1)
    details = r.usage.prompt_tokens_details
    assert details is not None, f"usage has no prompt_tokens_details: {r.usage}"
    assert BLOCK <= details.cached_tokens < r.usage.prompt_tokens, r.usage


def test_270m_context_length_exceeded(bc):
    with pytest.raises(openai.BadRequestError) as e:
        bc.chat.completions.create(model=NAME_270M, messages=CHAT, max_tokens=600)
    assert e.value.code == "context_length_exceeded" and e.value.param == "messages"
    assert e.value.body["message"].startswith(
        "This model's maximum context length is 512 tokens. However, you requested 6")
