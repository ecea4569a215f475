"""The server a Console user writes today: FastAPI + nnabla's NnpLoader, one network behind a lock.

    <reference-venv>/bin/python benchmarks/_serve_reference.py MODEL.nnp

Runs in a Python 3.10 venv with nnabla 1.39, FastAPI, uvicorn and python-multipart (bench_serve.py
makes it). It takes an uploaded image at POST /predict, preprocesses it as Console does (gray or RGB
by the input's channels, divided by 255) and answers {"y": [...]}. It prints "listening on URL".
"""
from __future__ import annotations

import socket
import sys
import threading

import numpy as np
import uvicorn
from fastapi import FastAPI, File, UploadFile
from PIL import Image

import nnabla as nn  # noqa: F401  (nnabla must be importable before NnpLoader)
from nnabla.utils.nnp_graph import NnpLoader

nnp = NnpLoader(sys.argv[1])
network_name = "MainRuntime" if "MainRuntime" in nnp.get_network_names() else nnp.get_network_names()[0]
network = nnp.get_network(network_name, batch_size=1)
x = next(iter(network.inputs.values()))
y = next(iter(network.outputs.values()))
lock = threading.Lock()
app = FastAPI()


@app.post("/predict")
def predict(file: UploadFile = File(...)) -> dict:
    image = Image.open(file.file).convert("L" if x.shape[1] == 1 else "RGB")
    pixels = np.asarray(image, dtype=np.float32) / 255.0
    data = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
    with lock:
        x.d = data.reshape(x.shape)
        y.forward(clear_buffer=True)
        result = y.d.copy()
    return {"y": result[0].tolist()}


sock = socket.socket()
sock.bind(("127.0.0.1", 0))
sock.listen(2048)
print(f"listening on http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False)).run(sockets=[sock])
