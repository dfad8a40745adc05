// Builds the browser scripts into the app's static files. With arguments, they name other output
// files in entry order (the test that checks the committed builds against fresh ones uses them).
import { build } from "esbuild";
import { fileURLToPath } from "node:url";

const here = (path) => fileURLToPath(new URL(path, import.meta.url));
const entries = [
  ["src/eventtrail.js", "../app/eventtrail/static/eventtrail/eventtrail.js"],
  ["src/analytics.js", "../app/eventtrail/static/eventtrail/analytics.js"],
];

for (const [index, [source, target]] of entries.entries()) {
  await build({
    entryPoints: [here(source)],
    outfile: process.argv[2 + index] || here(target),
    bundle: true,
    minify: true,
    format: "iife",
    target: "es2019",
    legalComments: "none",
    logLevel: "warning",
  });
}
