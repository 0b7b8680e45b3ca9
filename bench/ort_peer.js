#!/usr/bin/env node
// ONNX Runtime (CPU, fp32) under bench/'s protocol, for bench/peers.py, which exports the model and the
// input and computes the statistics: one session with the weights resident, --warmup untimed then
// --iterations timed session.run() calls, each timed by process.hrtime.bigint() around that one call.
// Prints one JSON line: the samples in ms, the process's RSS after the session was created and its peak.
// Linux only (/proc).
//
//   node bench/ort_peer.js --model M.onnx --input X.f32 --shape 1,3,224,224 --output Y.f32 \
//        --warmup 5 --iterations 30 --threads 2
//   node bench/ort_peer.js --version        # {"onnxruntime": ..., "node": ...}: is it installed?
//
// onnxruntime-node is found by Node's usual resolution; peers.py adds $VISOPT_ORT_PREFIX/node_modules
// (default build/ort, where tools/bench.sh installs it) to NODE_PATH.
'use strict';

const fs = require('fs');
const { parseArgs } = require('util');
const ort = require('onnxruntime-node');

const { values: opts } = parseArgs({
  options: {
    version: { type: 'boolean' },
    model: { type: 'string' },
    input: { type: 'string' },   // raw little-endian float32, NCHW
    shape: { type: 'string' },
    output: { type: 'string' },  // the last run's logits, raw float32, for peers.py's check against torch
    warmup: { type: 'string', default: '5' },
    iterations: { type: 'string', default: '30' },
    threads: { type: 'string', default: '0' },
  },
});

function readFloat32(path, count) {
  const bytes = fs.readFileSync(path);
  if (bytes.byteLength !== 4 * count) {
    throw new Error(`${path} holds ${bytes.byteLength} bytes, not the ${4 * count} of the shape`);
  }
  // A copy: a Buffer's byteOffset need not be a multiple of 4, which Float32Array requires.
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
}

// Peak (VmHWM) and current (VmRSS) resident memory of this process. Not getrusage's maxRSS: Linux carries
// the forking process's high-water mark over exec, so that would report peers.py's own RSS.
function residentBytes(field) {
  const line = fs.readFileSync('/proc/self/status', 'utf8').split('\n').find((l) => l.startsWith(`${field}:`));
  return Number(line.split(/\s+/)[1]) * 1024; // in kB
}

async function main() {
  if (opts.version) {
    console.log(JSON.stringify({ onnxruntime: ort.env.versions.node, node: process.versions.node }));
    return;
  }
  const shape = opts.shape.split(',').map(Number);
  const images = readFloat32(opts.input, shape.reduce((a, b) => a * b, 1));
  const session = await ort.InferenceSession.create(opts.model, {
    executionProviders: ['cpu'],
    intraOpNumThreads: Number(opts.threads), // 0: ONNX Runtime's default, one thread per core
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
  });
  const baselineRss = residentBytes('VmRSS'); // Node, ONNX Runtime and the optimised model
  const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', images, shape) };

  let outputs;
  for (let i = 0; i < Number(opts.warmup); i++) outputs = await session.run(feeds);
  const samples = [];
  for (let i = 0; i < Number(opts.iterations); i++) {
    const begin = process.hrtime.bigint();
    outputs = await session.run(feeds);
    samples.push(Number(process.hrtime.bigint() - begin) / 1e6);
  }
  const logits = outputs[session.outputNames[0]].data;
  fs.writeFileSync(opts.output, Buffer.from(logits.buffer, logits.byteOffset, logits.byteLength));
  console.log(JSON.stringify({
    samples_ms: samples,
    baseline_rss_bytes: baselineRss,
    peak_rss_bytes: residentBytes('VmHWM'),
    onnxruntime: ort.env.versions.node,
  }));
}

main().catch((e) => {
  console.error(`ort_peer.js: ${e.message || e}`);
  process.exit(1);
});
