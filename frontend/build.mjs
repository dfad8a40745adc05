// Builds the browser script into the app's static files; an optional argument names another
// output file (the test that checks the committed build against a fresh one uses it).
import { build } from "esbuild";
import { fileURLToPath } from "node:url";

const here = (path) => fileURLToPath(new URL(path, import.meta.url));

await build({
  entryPoints: [here("src/eventtrail.js")],
  outfile: process.argv[2] || here("../app/eventtrail/static/eventtrail/eventtrail.js"),
  bundle: true,
  minify: true,
  format: "iife",
  target: "es2019",
  legalComments: "none",
  logLevel: "warning",
});
