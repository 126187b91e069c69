#!/usr/bin/env python3
"""Reference renderings of the Gemma 4 chat templates for the C++ chat-template tests.

Each conversation below is rendered through transformers' own chat-template path
(`transformers.utils.chat_template_utils.render_jinja_template`, which compiles the template
with `_compile_jinja_template`: an ImmutableSandboxedEnvironment with trim_blocks,
lstrip_blocks, loopcontrols, and the raise_exception / strftime_now / tojson overrides).
The context recorded is exactly what the template saw (messages after transformers'
reasoning-field aliasing, tools, documents=None, add_generation_prompt, the special tokens
and enable_thinking when set); rendering that context directly with the compiled template is
checked to give the same text.

Templates: gemma4.jinja and gemma4-31b-it-interleaved.jinja from
../shared/data/chat-templates/ (read there, never copied into the repository).

Output: tests/fixtures/chat/gemma4_reference.jsonl, one JSON object per line:
  {"name": str, "template": "<file name>", "context": {...}, "rendered": str}
  {"name": str, "template": "<file name>", "context": {...}, "error": "<Type>: <message>"}

Run:  /work/main/.venv-tools/bin/python tools/make_chat_template_reference.py
"""

import argparse
import copy
import json
import os
import sys

from transformers.utils import chat_template_utils as ctu

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEMPLATE_DIR = os.path.join(REPO_ROOT, "..", "shared", "data", "chat-templates")
TEMPLATES = ["gemma4.jinja", "gemma4-31b-it-interleaved.jinja"]
SPECIAL_TOKENS = {"bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>",
                  "unk_token": "<unk>"}


def u(content):
    return {"role": "user", "content": content}


def a(content, **extra):
    return {"role": "assistant", "content": content, **extra}


def s(content, role="system"):
    return {"role": role, "content": content}


def call(name, arguments):
    return {"type": "function", "function": {"name": name, "arguments": arguments}}


def tool_turn(*responses, content=None, role="tool"):
    """A message carrying tool results in the template's `tool_responses` field."""
    msg = {"role": role, "tool_responses": list(responses)}
    if content is not None:
        msg["content"] = content
    return msg


def text(t):
    return {"type": "text", "text": t}


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string", "description": "City name, e.g. Zürich"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"],
                         "description": "Temperature unit"},
            },
            "required": ["location"],
        },
    },
}

NESTED = {
    "type": "function",
    "function": {
        "name": "book_trip",
        "description": "Book a trip with \"quotes\", <tags> & unicode: 東京 ✈️",
        "parameters": {
            "type": "object",
            "properties": {
                "travellers": {
                    "type": "array",
                    "description": "People travelling",
                    "items": {
                        "type": "object",
                        "properties": {
                            "name": {"type": "string", "description": "Full name"},
                            "age": {"type": "integer"},
                            "Seat": {"type": "string", "enum": ["aisle", "window"]},
                        },
                        "required": ["name"],
                    },
                },
                "dates": {
                    "type": "object",
                    "description": "Travel dates",
                    "properties": {
                        "start": {"type": "string", "description": "ISO date"},
                        "end": {"type": "string", "nullable": True},
                    },
                    "required": ["start"],
                },
                "tags": {"type": "array", "items": {"type": "string"}},
                "budget": {"type": "number", "description": "Max spend", "nullable": True},
                "refundable": {"type": "boolean"},
                "class": {"type": ["string", "null"], "enum": ["economy", "business"]},
                "meta": {"type": "object", "description": "Free-form metadata"},
                "codes": {"type": "array", "items": {"type": ["string", "integer"],
                                                     "description": "a code", "minItems": 2}},
            },
            "required": ["travellers", "dates"],
        },
        "response": {"type": "object", "description": "Booking confirmation"},
    },
}

NO_PARAMS = {"type": "function",
             "function": {"name": "get_time", "description": "Current time, no arguments."}}

EMPTY_PARAMS = {"type": "function",
                "function": {"name": "ping", "description": "Ping.",
                             "parameters": {"type": "object", "properties": {}}}}

STRING_RESPONSE = {"type": "function",
                   "function": {"name": "echo", "description": "Echo text.",
                                "parameters": {"type": "object",
                                               "properties": {"text": {"type": "string"}},
                                               "required": ["text"]},
                                "response": {"type": "string", "description": "The text"}}}

THOUGHT = "<|channel>thought\nLet me think about it.<channel|>"

# (name, messages, tools, extra kwargs). Every case renders with and without the generation
# prompt; cases whose name starts with "think" also render with enable_thinking on and off.
CASES = [
    ("single_user", [u("Hello")], None, {}),
    ("system_user", [s("You are a helpful assistant."), u("Hi!")], None, {}),
    ("developer_user", [s("Follow the rules.", "developer"), u("Go")], None, {}),
    ("multi_turn", [u("What is 2+2?"), a("4"), u("And 3+3?"), a("6"), u("Thanks")], None, {}),
    ("system_whitespace", [s("  \n\tPadded system.\n\n  "), u("   spaced user   \n")], None, {}),
    ("unicode_text", [s("Réponds en français. 日本語もOK"), u("Café 🙂 naïve — “quotes” ß\u3000"),
                      a("\u00a0Très bien ✓\u2028"), u("مرحبا e\u0301 a\u0308")], None, {}),
    ("assistant_strip_thinking", [u("Q"), a(THOUGHT + "The answer is 42.  "), u("Why?")],
     None, {}),
    ("assistant_many_channels", [u("Q"),
                                 a("pre <|channel>a<channel|> mid <|channel>b<channel|> post"),
                                 u("ok")], None, {}),
    ("assistant_unclosed_channel", [u("Q"), a("answer <|channel>never closed")], None, {}),
    ("special_tokens_in_text", [u("Print <|turn> and <turn|> and <|\"|> literally"),
                                a("<start_of_turn> is Gemma 3")], None, {}),
    ("jinja_like_text", [u("{{ not a variable }} {% neither %} {# nor #}")], None, {}),
    ("multimodal_parts", [u([text("  Look at this: "), {"type": "image", "url": "x.png"},
                             text(" and listen "), {"type": "audio"}, {"type": "video"},
                             text(" done. ")])], None, {}),
    ("multimodal_assistant", [u([{"type": "image"}, text("Caption?")]),
                              a([text(THOUGHT + " A cat. ")]), u("More")], None, {}),
    ("system_parts_list", [{"role": "system", "content": [text("List-form system.")]},
                           u("Hi")], None, {}),
    ("tool_role_passthrough", [u("q"), {"role": "tool", "content": " raw tool text "}], None, {}),
    ("tools_simple", [u("Weather in Paris?")], [WEATHER], {}),
    ("tools_nested", [s("Travel agent."), u("Book it")], [NESTED, WEATHER], {}),
    ("tools_no_params", [u("Time?")], [NO_PARAMS, EMPTY_PARAMS, STRING_RESPONSE], {}),
    ("tools_empty_list", [u("hi")], [], {}),
    ("tool_call_flow", [
        u("Weather in Paris and Tokyo?"),
        a(None, tool_calls=[call("get_weather", {"location": "Paris", "unit": "celsius"}),
                            call("get_weather", {"location": "東京"})]),
        tool_turn({"name": "get_weather", "response": {"temp": 21.5, "sky": "clear",
                                                       "alerts": []}},
                  {"name": "get_weather", "response": {"temp": -3, "sky": "snow ❄",
                                                       "wind": {"kmh": 12, "dir": "N"}}}),
    ], [WEATHER], {}),
    ("tool_call_nested_args", [
        u("Book"),
        a("Booking now.", tool_calls=[call("book_trip", {
            "travellers": [{"name": "Ann O'Neil", "age": 34, "Seat": "aisle"},
                           {"name": "Bo \"B\" Li", "age": 7}],
            "dates": {"start": "2025-01-02", "end": None},
            "tags": ["a", "b", "ünï"],
            "budget": 1234.5, "refundable": False, "flag": True,
            "ratios": [0.1, 1e-07, 1e20, 3.0, -2, 9007199254740993],
            "empty": {}, "none_list": [],
        })]),
        tool_turn({"name": "book_trip", "response": {"ok": True, "id": 77, "notes": None}},
                  content="Booked."),
    ], [NESTED], {}),
    ("tool_call_string_args", [u("x"), a(None, tool_calls=[call("echo", '{"text": "hi"}')])],
     [STRING_RESPONSE], {}),
    ("tool_response_scalars", [
        u("x"),
        a(None, tool_calls=[call("echo", {"text": "a"})]),
        tool_turn({"name": "echo", "response": "plain string"},
                  {"name": "echo", "response": 42},
                  {"name": "echo", "response": [1, "two", {"k": False}]},
                  {"response": 2.5},
                  {"name": "echo", "response": None}),
    ], [STRING_RESPONSE], {}),
    ("tool_then_answer", [
        u("Weather?"),
        a(None, tool_calls=[call("get_weather", {"location": "Oslo"})],
          tool_responses=[{"name": "get_weather", "response": {"temp": 5}}]),
        a("It is 5 degrees."),
        u("Thanks"),
    ], [WEATHER], {}),
    ("think_basic", [u("Solve x+1=2")], None, {}),
    ("think_with_system_tools", [s("Be careful."), u("Weather?")], [WEATHER], {}),
    ("think_reasoning_content", [
        u("First question"),
        a("First answer", reasoning_content="old reasoning before the last user turn"),
        u("Weather in Rome?"),
        a(None, reasoning_content="I should call the tool.",
          tool_calls=[call("get_weather", {"location": "Rome"})]),
        tool_turn({"name": "get_weather", "response": {"temp": 30}}),
        a(None, reasoning_content="Now I know.", tool_calls=[call("get_weather",
                                                                  {"location": "Milan"})]),
        tool_turn({"name": "get_weather", "response": {"temp": 28}}),
    ], [WEATHER], {}),
    ("think_thinking_alias", [u("q"), a("answer", thinking="aliased to reasoning_content"),
                              u("again")], None, {}),
    ("long_conversation", [u(f"Question {i}?") if i % 2 == 0 else a(f"Answer {i}.")
                           for i in range(12)], None, {}),
    ("empty_contents", [s(""), u(""), a(""), u(" ")], None, {}),
    ("numbers_and_bools_content", [u("true"), a("None"), u("1.0")], None, {}),
]

ERROR_CASES = [
    ("error_no_messages", [], None, {}),
    ("error_tool_call_without_name", [u("x"), a(None, tool_calls=[{"function": {"arguments": {}}}])],
     None, {}),
    ("error_tool_response_int_name", [u("x"), tool_turn({"name": 5, "response": {"a": 1}},
                                                         role="user")],
     None, {}),
]


def render(template_text, messages, tools, kwargs, gen):
    """Renders through transformers and returns (context, rendered or None, error or None)."""
    kwargs = {**SPECIAL_TOKENS, **kwargs}
    context = {
        "messages": ctu._alias_reasoning_fields(ctu._plain_template_data(copy.deepcopy(messages))),
        "tools": ctu._plain_template_data(copy.deepcopy(tools)),
        "documents": None,
        "add_generation_prompt": gen,
        **ctu._plain_template_data(kwargs),
    }
    try:
        rendered, _ = ctu.render_jinja_template(
            conversations=[copy.deepcopy(messages)], tools=copy.deepcopy(tools),
            chat_template=template_text, add_generation_prompt=gen, **kwargs)
        rendered = rendered[0]
    except Exception as e:  # the template raised; record it as an expected error
        try:
            ctu._compile_jinja_template(template_text).render(**context)
        except Exception as e2:
            assert type(e2) is type(e), (e, e2)
        else:
            raise AssertionError("direct render did not fail like transformers did")
        return context, None, f"{type(e).__name__}: {e}"
    direct = ctu._compile_jinja_template(template_text).render(**context)
    assert direct == rendered, f"direct render differs:\n{direct!r}\n{rendered!r}"
    return context, rendered, None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(REPO_ROOT, "tests", "fixtures", "chat",
                                                  "gemma4_reference.jsonl"))
    args = ap.parse_args()

    rows = []
    for template_name in TEMPLATES:
        with open(os.path.join(TEMPLATE_DIR, template_name), encoding="utf-8") as f:
            template_text = f.read()
        num_ok = 0
        for name, messages, tools, kwargs in CASES + ERROR_CASES:
            variants = [kwargs]
            if name.startswith("think"):
                variants = [{**kwargs, "enable_thinking": True},
                            {**kwargs, "enable_thinking": False}, kwargs]
            for extra in variants:
                for gen in (False, True):
                    context, rendered, error = render(template_text, messages, tools, extra, gen)
                    row = {"name": name, "template": template_name, "context": context}
                    if error is None:
                        assert not name.startswith("error"), f"{name} did not fail"
                        row["rendered"] = rendered
                        num_ok += 1
                    else:
                        assert name.startswith("error"), f"{name}: {error}"
                        row["error"] = error
                    rows.append(row)
        print(f"{template_name}: {len(CASES)} conversations, {num_ok} renderings, "
              f"{len(ERROR_CASES)} error cases")

    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows)} rows to {os.path.relpath(args.out, REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
