#!/usr/bin/env python3
"""Gemma 3 chat-template reference renderings for the C++ template tests.

The default GGUF carries no `tokenizer.chat_template` (checked here), so the template used is
tools/gemma3_chat_template.jinja, written from gemma-models.md section 1.5. Every conversation
is rendered through transformers' `apply_chat_template(..., tokenize=False)` with that template
set on the GGUF's own tokenizer (so `bos_token` is the GGUF's), and cross-checked against a plain
jinja2 rendering. Conversations that break the user/assistant alternation are recorded as
expected errors.

Output: tests/fixtures/chat/gemma3_chat.jsonl, one JSON object per line:
  {"name": str, "messages": [...], "add_generation_prompt": bool, "rendered": str}
  {"name": str, "messages": [...], "add_generation_prompt": bool, "error": true,
   "error_message": str}

Run:  /work/main/.venv-tools/bin/python tools/make_gemma3_chat_reference.py
"""

import argparse
import json
import os
import sys

import jinja2
from transformers import AutoTokenizer

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_GGUF = os.path.join(REPO_ROOT, "models", "gemma-3-270m-q4_k_m.gguf")
TEMPLATE = os.path.join(REPO_ROOT, "tools", "gemma3_chat_template.jinja")


def u(text):
    return {"role": "user", "content": text}


def a(text):
    return {"role": "assistant", "content": text}


def s(text):
    return {"role": "system", "content": text}


def txt(text):
    return {"type": "text", "text": text}


IMG = {"type": "image"}

# (name, messages); each is rendered with and without the generation prompt unless the name
# is listed in ONE_WAY below.
CASES = [
    ("single_user", [u("Hello")]),
    ("system_then_user", [s("SYS"), u("Hello")]),
    ("two_turns", [u("Hi there"), a("Hello! How can I help?")]),
    ("three_turns", [u("What is 2+2?"), a("4"), u("And 3+3?")]),
    ("system_multi_turn", [s("You are terse."), u("Name a colour."), a("Blue."),
                           u("Another one.")]),
    ("trim_spaces", [u("   padded question   ")]),
    ("trim_newlines_tabs", [u("\n\n\tline one\nline two\t\n\n"), a("\r\n answer \r\n")]),
    ("inner_whitespace_kept", [u("a  b\n\n c\t d")]),
    ("system_not_trimmed", [s("  spaced system  \n"), u("  question  ")]),
    ("system_multiline", [s("Rule 1: be kind.\nRule 2: be brief."), u("Go.")]),
    ("empty_user", [u("")]),
    ("whitespace_only_user", [u(" \n\t ")]),
    ("empty_system", [s(""), u("Hi")]),
    ("unicode_cjk", [u("日本の首都はどこですか？"), a("東京です。")]),
    ("unicode_emoji_accents", [u("Café 🙂 naïve — “quotes” and ß"), a("✓ noted")]),
    ("unicode_rtl_and_combining", [u("مرحبا بالعالم e\u0301 a\u0308")]),
    ("unicode_space_trim", [u("\u3000ideographic space\u3000"), a("\u00a0nbsp\u00a0")]),
    ("special_token_text_in_content", [u("Print <start_of_turn> literally"),
                                       a("<end_of_turn> is a marker")]),
    ("parts_text_only", [{"role": "user", "content": [txt("Describe this.")]}]),
    ("parts_image_then_text", [{"role": "user", "content": [IMG, txt("What is in the image?")]}]),
    ("parts_text_image_text", [{"role": "user",
                                "content": [txt("  Compare "), IMG, txt(" with "), IMG,
                                            txt(" please.  ")]}]),
    ("parts_multi_text_trimmed", [{"role": "user", "content": [txt(" one "), txt(" two ")]}]),
    ("parts_system_list", [{"role": "system", "content": [txt("List-form system.")]},
                           {"role": "user", "content": [IMG, txt("Caption it.")]}]),
    ("parts_assistant_list", [u("Say hi"), {"role": "assistant", "content": [txt(" hi ")]}]),
    ("parts_system_string_user_image_first", [s("SYS"), {"role": "user", "content": [IMG]}]),
    ("long_conversation", [u(f"Question {i}?") if i % 2 == 0 else a(f"Answer {i}.")
                           for i in range(10)]),
    ("markdown_code", [u("Write code:\n```python\nprint('x')\n```"),
                       a("```python\nprint('x')\n```\nDone.")]),
    ("jinja_like_text", [u("{{ not a variable }} {% neither %} {# nor #}")]),
    ("only_system", [s("Lonely system prompt")]),
    ("ends_with_assistant", [s("S"), u("Q"), a("A")]),
    ("newline_heavy_assistant", [u("x"), a("\n\nfirst\n\n\nsecond\n\n")]),
]

ERROR_CASES = [
    ("error_two_users", [u("one"), u("two")]),
    ("error_assistant_first", [a("I start"), u("then you")]),
    ("error_two_assistants", [u("q"), a("a1"), a("a2")]),
    ("error_system_after_first", [u("q"), a("a"), s("late system")]),
    ("error_system_then_assistant", [s("S"), a("A")]),
]


def plain_render(template_text, messages, add_generation_prompt, bos_token):
    """Independent rendering with bare jinja2 (same loader options transformers documents)."""
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    return env.from_string(template_text).render(
        messages=messages, add_generation_prompt=add_generation_prompt, bos_token=bos_token)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gguf", default=DEFAULT_GGUF)
    ap.add_argument("--out", default=os.path.join(REPO_ROOT, "tests", "fixtures", "chat",
                                                  "gemma3_chat.jsonl"))
    args = ap.parse_args()

    import gguf
    reader = gguf.GGUFReader(args.gguf)
    has_template = "tokenizer.chat_template" in reader.fields
    print(f"{os.path.basename(args.gguf)}: tokenizer.chat_template present = {has_template}")

    gdir, gname = os.path.split(os.path.abspath(args.gguf))
    tok = AutoTokenizer.from_pretrained(gdir, gguf_file=gname)
    assert tok.bos_token == "<bos>", tok.bos_token
    with open(TEMPLATE, encoding="utf-8") as f:
        template_text = f.read()
    tok.chat_template = template_text

    # The worked example of gemma-models.md section 1.5.
    example = tok.apply_chat_template([s("SYS"), u("Hello")], tokenize=False,
                                      add_generation_prompt=True)
    want = "<bos><start_of_turn>user\nSYS\n\nHello<end_of_turn>\n<start_of_turn>model\n"
    assert example == want, repr(example)

    rows = []
    for name, messages in CASES:
        for gen in (False, True):
            rendered = tok.apply_chat_template(messages, tokenize=False,
                                               add_generation_prompt=gen)
            other = plain_render(template_text, messages, gen, tok.bos_token)
            assert rendered == other, f"{name}: transformers {rendered!r} != jinja2 {other!r}"
            rows.append({"name": name, "messages": messages, "add_generation_prompt": gen,
                         "rendered": rendered})
    for name, messages in ERROR_CASES:
        for gen in (False, True):
            try:
                tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen)
            except Exception as e:  # transformers re-raises the template's TemplateError
                rows.append({"name": name, "messages": messages, "add_generation_prompt": gen,
                             "error": True, "error_message": str(e)})
            else:
                raise AssertionError(f"{name}: expected the template to raise")

    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    num_err = sum(1 for r in rows if r.get("error"))
    print(f"wrote {len(rows)} rows ({len(rows) - num_err} rendered, {num_err} errors) "
          f"to {os.path.relpath(args.out, REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
