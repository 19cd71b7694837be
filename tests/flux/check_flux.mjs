// Parses and type-checks Flux with InfluxData's own compiler front end, the WebAssembly build of
// flux-lsp published as @influxdata/flux-lsp-browser (pinned in package.json).
//
//   node check_flux.mjs < queries.json     [{"name": "...", "query": "..."}, ...]
//
// Prints one JSON line per query: {"name", "parses", "valid", "errors"}; exits 0 when every
// query is valid, 1 otherwise, 2 on bad input. Three verdicts of the same compiler front end:
// parse() (syntax errors, with messages), new Flux(src).is_valid() (the semantic check: true
// or false only) and the language server's diagnostics for the query opened as a document
// (the semantic errors with their messages: "expected duration but found string (argument
// unit)", "undefined identifier rnge"...), which are what "errors" reports. The package is built for bundlers (its glue code
// imports the .wasm file as an ES module, which Node cannot load without an experimental flag
// and then hits a circular import), so this script instantiates the WebAssembly module itself
// and hands its exports to the unmodified glue code.
import { readFileSync } from "node:fs";

// The WebAssembly module logs through console.log/info/debug: keep stdout for the results.
for (const level of ["log", "info", "debug"]) console[level] = (...args) => console.error(...args);

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

/** The language server of the same package: its diagnostics for one document. */
function languageServer(flux) {
  const server = new flux.Lsp();
  const waiting = new Map();
  server.onMessage((text) => {
    const message = JSON.parse(text);
    if (message.method === "textDocument/publishDiagnostics") {
      const resolve = waiting.get(message.params.uri);
      waiting.delete(message.params.uri);
      if (resolve) resolve(message.params.diagnostics);
    }
  });
  server.run().catch((error) => {
    console.error(`check_flux: the Flux language server stopped: ${error}`);
    process.exit(2);
  });
  let opened = 0;
  return {
    async start() {
      await server.send(JSON.stringify({ jsonrpc: "2.0", id: 0, method: "initialize", params: { capabilities: {} } }));
      await server.send(JSON.stringify({ jsonrpc: "2.0", method: "initialized", params: {} }));
    },
    async diagnostics(text) {
      // one folder per query: the server treats the files of a folder as one package
      const uri = `file:///query-${++opened}/query.flux`;
      const published = new Promise((resolve) => waiting.set(uri, resolve));
      await server.send(
        JSON.stringify({
          jsonrpc: "2.0",
          method: "textDocument/didOpen",
          params: { textDocument: { uri, languageId: "flux", version: 1, text } },
        }),
      );
      return published;
    },
  };
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
const server = languageServer(flux);
await server.start();
let allValid = true;
for (const { name, query } of queries) {
  const syntax = parseErrors(flux.parse(query));
  const program = new flux.Flux(query);
  const semantic = (await server.diagnostics(query))
    .filter((diagnostic) => diagnostic.severity === 1)
    .map((d) => `${d.range.start.line + 1}:${d.range.start.character + 1}: ${d.message}`);
  const valid = program.is_valid() && semantic.length === 0;
  program.free();
  allValid &&= valid && syntax.length === 0;
  const errors = [...new Set([...syntax, ...semantic])];
  process.stdout.write(JSON.stringify({ name, parses: syntax.length === 0, valid, errors }) + "\n");
}
process.exit(allValid ? 0 : 1);
