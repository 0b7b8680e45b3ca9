#!/usr/bin/env python3
"""examples/serve over HTTP on 127.0.0.1: concurrent /predict requests are batched and each answer equals
a direct engine run of the same image (serve --once); a malformed image is a 400 with visopt's message,
an unknown path a 404 and a wrong method a 405; /status counts the requests and gives ordered p50/p95/p99
latencies and the warmed-up batch sizes; SIGTERM stops it cleanly.

    serve_test.py PATH/TO/serve PATH/TO/sample.jpg
Standard library only."""
import concurrent.futures
import json
import os
import random
import signal
import struct
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import zlib

MODEL = ["--random-weights", "--seed", "5", "--model", "resnet18", "--image-size", "64", "--level", "O1",
         "--backend", "reference", "--max-batch", "4", "--threads", "2"]


def png(width, height, rng):
    """An 8-bit RGB PNG of random pixels (every row with filter type 0), written with zlib alone."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = b"".join(b"\0" + bytes(rng.randrange(256) for _ in range(width * 3)) for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def request(url, data=None, content_type="application/octet-stream"):
    """(status, parsed JSON body) of a GET, or of a POST when data is given."""
    headers = {} if data is None else {"Content-Type": content_type}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers), timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def check(condition, what):
    if not condition:
        raise AssertionError(what)


def main():
    serve, sample = sys.argv[1], sys.argv[2]
    rng = random.Random(3)
    with tempfile.TemporaryDirectory() as tmp:
        paths = [sample]
        for i, (w, h) in enumerate([(64, 64), (100, 37), (31, 80), (257, 129), (13, 7), (90, 90), (40, 200),
                                    (65, 64), (120, 71), (33, 33), (70, 20)]):
            paths.append(os.path.join(tmp, f"image{i}.png"))
            with open(paths[-1], "wb") as f:
                f.write(png(w, h, rng))

        # Each image alone through the engine, no batcher: the answers the server must give.
        plan = os.path.join(tmp, "engine.plan")
        direct = subprocess.run([serve, *MODEL, "--plan", plan, "--once", *paths], check=True, capture_output=True, text=True)
        check(os.path.exists(plan) and "saved the engine's plan" in direct.stderr, f"--plan was not saved: {direct.stderr!r}")
        expected = {a["image"]: a["top5"] for a in map(json.loads, direct.stdout.splitlines())}
        check(len(expected) == len(paths), f"--once answered {len(expected)} of {len(paths)} images")

        server = subprocess.Popen([serve, *MODEL, "--plan", plan, "--host", "127.0.0.1", "--port", "0", "--batch-window-ms", "300"],
                                  stdout=subprocess.PIPE, text=True)
        try:
            first = server.stdout.readline()
            check(first.startswith("serve: listening on http://127.0.0.1:"), f"first line: {first!r}")
            base = first.split()[-1]
            check(request(base + "/health") == (200, {"status": "ok"}), "/health")

            def predict(path):
                with open(path, "rb") as f:
                    return path, request(base + "/predict", f.read())

            with concurrent.futures.ThreadPoolExecutor(len(paths)) as pool:
                answers = list(pool.map(predict, paths))
            for path, (status, body) in answers:
                check(status == 200, f"{path}: HTTP {status} {body}")
                got, want = body["top5"], expected[path]
                check([c["index"] for c in got] == [c["index"] for c in want],
                      f"{path}: server top-5 {[c['index'] for c in got]} != direct {[c['index'] for c in want]}")
                for g, w in zip(got, want):
                    check(g["class"] == w["class"] and abs(g["probability"] - w["probability"]) <= 1e-4 * w["probability"] + 1e-7,
                          f"{path}: {g} != {w}")
            sizes = [body["batch_size"] for _, (_, body) in answers]
            check(max(sizes) > 1, f"concurrent requests were never batched: batch sizes {sizes}")

            status, body = request(base + "/predict", b"this is not an image")
            check(status == 400 and "io: cannot read image 'request body': not a JPEG, PNG, BMP or GIF image" in body["error"],
                  f"malformed image: HTTP {status} {body}")
            status, body = request(base + "/predict", b"")
            check(status == 400 and "it is empty" in body["error"], f"empty body: HTTP {status} {body}")

            # curl's default Content-Type for --data-binary is form-encoded: the bytes are an image all the same.
            with open(sample, "rb") as f:
                status, body = request(base + "/predict", f.read(), "application/x-www-form-urlencoded")
            check(status == 200 and body["top5"][0]["index"] == expected[sample][0]["index"], f"form-typed body: HTTP {status} {body}")
            status, body = request(base + "/nowhere")
            check(status == 404 and "the endpoints are" in body["error"], f"unknown path: HTTP {status} {body}")
            status, body = request(base + "/health", b"x")
            check(status == 405 and "the endpoints are" in body["error"], f"POST /health: HTTP {status} {body}")

            status, body = request(base + "/status")
            check(status == 200, f"/status: HTTP {status}")
            check(body["requests"] == {"answered": len(paths) + 1, "bad_request": 2, "failed": 0}, f"counts {body['requests']}")
            latency = body["latency_ms"]
            check(latency["samples"] == len(paths) + 1, f"latency samples {latency}")
            check(0 < latency["p50"] <= latency["p95"] <= latency["p99"], f"percentiles out of order: {latency}")
            check(max(sizes) == body["batches"]["largest_batch"] <= 4, f"batches {body['batches']} vs sizes {sizes}")
            check(body["batches"]["images"] == len(paths) + 1, f"batches {body['batches']}")
            check(body["batches"]["batch_sizes"] == [1, 2, 4], f"warmed-up batch sizes {body['batches']}")
            check(body["preprocess"].startswith("bilinear resize to 73, centre crop 64"), f"preprocess {body['preprocess']}")
            check(body["report"]["level"] == "O1" and body["report"]["backend"] == "reference", f"report {body['report']}")
            check(any(o["name"] == "saved_plan" and o["applied"] for o in body["report"]["optimizations"]),
                  f"the second start did not use the saved plan: {body['report']['optimizations']}")
            print(f"serve_test: {len(paths)} answers in batches of {sorted(sizes)}, latency {latency}")
        finally:
            server.send_signal(signal.SIGTERM)
            rest, _ = server.communicate(timeout=60)
        check(server.returncode == 0, f"serve exited with {server.returncode}")
        check(f"stopped after {len(paths) + 1} answers" in rest, f"last output: {rest[-300:]!r}")
    print("serve_test: passed")


if __name__ == "__main__":
    main()
