// Validates an AsyncAPI document with AsyncAPI's own parser (schema and semantic rules).
// Exits 1 on any error or warning; informational hints (such as a newer AsyncAPI version
// existing) are printed only.
// Usage: node validate_asyncapi.mjs NODE_MODULES_DIR docs/asyncapi.json
// (the parser is installed outside the checkout, in the tools cache).
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";

const require = createRequire(`${process.argv[2]}/`);
const { Parser } = require("@asyncapi/parser");

const ERROR = 0, WARNING = 1;
const { document, diagnostics } = await new Parser().parse(readFileSync(process.argv[3], "utf8"));
let failed = !document;
for (const d of diagnostics) {
  const bad = d.severity === ERROR || d.severity === WARNING;
  failed ||= bad;
  console.log(`${bad ? "FAIL" : "note"} ${d.code}: ${d.message} at ${d.path.join(".")}`);
}
console.log(failed ? "asyncapi: INVALID" : "asyncapi: valid");
process.exit(failed ? 1 : 0);
