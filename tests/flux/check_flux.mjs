// Parses and type-checks Flux with InfluxData's own compiler front end, the WebAssembly build of
// flux-lsp published as @influxdata/flux-lsp-browser (pinned in package.json).
//
//   node check_flux.mjs < queries.json     [{"name": "...", "query": "..."}, ...]
//
// Prints one JSON line per query: {"name", "parses", "valid", "errors"}; exits 0 when every
// query is valid, 1 otherwise, 2 on bad input. The package is built for bundlers (its glue code
// imports the .wasm file as an ES module, which Node cannot load without an experimental flag
// and then hits a circular import), so this script instantiates the WebAssembly module itself
// and hands its exports to the unmodified glue code.
import { readFileSync } from "node:fs";

const PACKAGE = new URL("./node_modules/@influxdata/flux-lsp-browser/", import.meta.url);
const IMPORT_LINE = "import * as wasm from './flux-lsp-browser_bg.wasm';";
const MEMORY_LINES =
  "cachedInt32Memory0 = new Int32Array(wasm.memory.buffer);\n" +
  "cachedUint8Memory0 = new Uint8Array(wasm.memory.buffer);";

async function loadCompiler() {
  let glue = readFileSync(new URL("flux-lsp-browser_bg.js", PACKAGE), "utf8");
  if (!glue.includes(IMPORT_LINE) || !glue.includes(MEMORY_LINES)) {
    throw new Error("unexpected flux-lsp-browser glue code: check the pinned version");
  }
  glue = glue.replace(IMPORT_LINE, "let wasm;").replace(
    MEMORY_LINES,
    "export function __bind(exports) {\n  wasm = exports;\n" + MEMORY_LINES + "\n}",
  );
  const url = "data:text/javascript;base64," + Buffer.from(glue).toString("base64");
  const bindings = await import(url);
  const bytes = readFileSync(new URL("flux-lsp-browser_bg.wasm", PACKAGE));
  const { instance } = await WebAssembly.instantiate(bytes, {
    "./flux-lsp-browser_bg.js": bindings,
  });
  bindings.__bind(instance.exports);
  return bindings;
}

function parseErrors(node, found = []) {
  if (Array.isArray(node)) {
    node.forEach((item) => parseErrors(item, found));
  } else if (node && typeof node === "object") {
    for (const error of node.errors || []) {
      found.push(typeof error === "string" ? error : error.msg || JSON.stringify(error));
    }
    for (const [key, value] of Object.entries(node)) {
      if (key !== "errors") parseErrors(value, found);
    }
  }
  return found;
}

const input = readFileSync(0, "utf8");
let queries;
try {
  queries = JSON.parse(input);
  if (!Array.isArray(queries)) throw new Error("expected a JSON list");
} catch (error) {
  console.error(`check_flux: bad input: ${error.message}`);
  process.exit(2);
}
const flux = await loadCompiler();
let allValid = true;
for (const { name, query } of queries) {
  const errors = parseErrors(flux.parse(query));
  const program = new flux.Flux(query);
  const valid = program.is_valid();
  program.free();
  allValid &&= valid && errors.length === 0;
  console.log(JSON.stringify({ name, parses: errors.length === 0, valid, errors }));
}
process.exit(allValid ? 0 : 1);
