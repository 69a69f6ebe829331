"""Tokenise texts with llama-cpp-python (vocab only); run by the interop tests in its own venv.

Reads ``{"gguf": PATH, "texts": [...], "special": bool}`` as JSON on stdin and prints one JSON
object: ``{"ids": [[...], ...], "detokenized": [...]}`` — each text tokenised the way
llama.cpp does for a prompt (``add_bos`` as the GGUF says), then turned back into text.
"""

import json
import sys

import llama_cpp

request = json.load(sys.stdin)
llm = llama_cpp.Llama(model_path=request["gguf"], vocab_only=True, verbose=False)
ids = [llm.tokenize(text.encode("utf-8"), special=request["special"]) for text in request["texts"]]
detokenized = [llm.detokenize(row).decode("utf-8", errors="replace") for row in ids]
json.dump({"ids": ids, "detokenized": detokenized}, sys.stdout)
