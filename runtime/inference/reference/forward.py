"""An independent all-MiniLM-L6-v2 forward pass in NumPy, from the same files, that produced
the reference components in tests/model.rs. pip install numpy safetensors tokenizers."""
import json, numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer
import os, sys
d = os.environ.get("WEFT_MODEL_DIR", os.path.expanduser("~/.cache/weft/models/all-MiniLM-L6-v2")) + "/"
W = load_file(d + "model.safetensors"); cfg = json.load(open(d + "config.json"))
p = "" if "embeddings.word_embeddings.weight" in W else "bert."
tok = Tokenizer.from_file(d + "tokenizer.json"); tok.no_padding(); tok.no_truncation()
def ln(x, g, b, eps=1e-12):
    m = x.mean(-1, keepdims=True); v = ((x - m) ** 2).mean(-1, keepdims=True)
    return (x - m) / np.sqrt(v + eps) * g + b
from math import erf, sqrt
gelu = np.vectorize(lambda x: 0.5 * x * (1 + erf(x / sqrt(2))))
def embed(text):
    ids = np.array(tok.encode(text).ids)
    n = len(ids)
    x = W[p+"embeddings.word_embeddings.weight"][ids] + W[p+"embeddings.position_embeddings.weight"][:n] + W[p+"embeddings.token_type_embeddings.weight"][0]
    x = ln(x, W[p+"embeddings.LayerNorm.weight"], W[p+"embeddings.LayerNorm.bias"])
    H = cfg["num_attention_heads"]; D = x.shape[1] // H
    for l in range(cfg["num_hidden_layers"]):
        q = lambda name: W[f"{p}encoder.layer.{l}.{name}"]
        Q = x @ q("attention.self.query.weight").T + q("attention.self.query.bias")
        K = x @ q("attention.self.key.weight").T + q("attention.self.key.bias")
        V = x @ q("attention.self.value.weight").T + q("attention.self.value.bias")
        out = []
        for h in range(H):
            s = Q[:, h*D:(h+1)*D] @ K[:, h*D:(h+1)*D].T / np.sqrt(D)
            s = np.exp(s - s.max(-1, keepdims=True)); s /= s.sum(-1, keepdims=True)
            out.append(s @ V[:, h*D:(h+1)*D])
        a = np.concatenate(out, -1) @ q("attention.output.dense.weight").T + q("attention.output.dense.bias")
        x = ln(a + x, q("attention.output.LayerNorm.weight"), q("attention.output.LayerNorm.bias"))
        i = gelu(x @ q("intermediate.dense.weight").T + q("intermediate.dense.bias"))
        o = i @ q("output.dense.weight").T + q("output.dense.bias")
        x = ln(o + x, q("output.LayerNorm.weight"), q("output.LayerNorm.bias"))
    v = x.mean(0); return v / np.linalg.norm(v)
v = embed(sys.argv[1] if len(sys.argv) > 1 else "The cat sits on the mat.")
print(json.dumps([round(float(t), 6) for t in v[:8]]))
