"""Writes a tiny offline model directory: a llama-like config (no weights) and a word-level
tokenizer of 2304 pseudo-words, so that every token id the mocker emits (1000..1999) decodes."""
import json, os, sys

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
specials = ["<unk>", "<|im_start|>", "<|im_end|>", "<|endoftext|>"]
consonants, vowels = "bdfgklmnprstvz", "aeiou"
syllables = [c + v for c in consonants for v in vowels]  # 70
words = []
for a in syllables:
    for b in syllables:
        words.append(a + b)
        if len(words) + len(specials) >= 2304:
            break
    if len(words) + len(specials) >= 2304:
        break
vocab = {t: i for i, t in enumerate(specials + words)}
tokenizer = {
    "version": "1.0",
    "truncation": None,
    "padding": None,
    "added_tokens": [
        {"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": False, "special": True}
        for i, t in enumerate(specials)
    ],
    "normalizer": {"type": "Lowercase"},
    "pre_tokenizer": {"type": "Whitespace"},
    "post_processor": None,
    "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
    "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"},
}
files = {
    "tokenizer.json": tokenizer,
    "tokenizer_config.json": {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": None,
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
        "unk_token": "<unk>",
        "model_max_length": 4096,
        "chat_template": "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}",
    },
    "config.json": {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64,
        "intermediate_size": 128, "num_attention_heads": 4, "num_key_value_heads": 4,
        "num_hidden_layers": 2, "vocab_size": len(vocab), "max_position_embeddings": 4096,
        "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "float16",
    },
    "generation_config.json": {"bos_token_id": 1, "eos_token_id": 2},
}
for name, content in files.items():
    with open(os.path.join(out, name), "w") as f:
        json.dump(content, f, indent=1, sort_keys=True)
