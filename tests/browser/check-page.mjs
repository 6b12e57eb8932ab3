// Opens a tracekit trace page in headless Chromium and checks that it renders every span.
//
//   node check-page.mjs PAGE.html|http://HOST:PORT/ SCREENSHOT.png EXPECTED_JSON
//
// EXPECTED_JSON: {"spans": [{"id", "name"}...], "edges": [["from", "to"]...]}.
// For each span: exactly one visible row with its name, and a bar inside the timeline whose colour is
// found in the screenshot at the bar's centre. For each edge: the arrow and both nodes. A file must
// fetch nothing, a served page (tracekit-view's) nothing but from its own origin; neither may log an
// error. Prints {"spans", "nodes", "edges", "screenshot"} as JSON; any failed
// check exits 1 with every problem found.
import { chromium } from "playwright-core";
import { pathToFileURL } from "node:url";

const [pagePath, screenshotPath, expectedJson] = process.argv.slice(2);
if (!pagePath || !screenshotPath || !expectedJson) {
  console.error("usage: node check-page.mjs PAGE.html|http://HOST:PORT/ SCREENSHOT.png EXPECTED_JSON");
  process.exit(2);
}
const expected = JSON.parse(expectedJson);
const problems = [];

// What this machine's closed network needs: no background fetches, no sandbox as root, no GPU.
const browser = await chromium.launch({
  executablePath: process.env.TRACEKIT_CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
try {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 }, deviceScaleFactor: 1 });
  // The page is self-contained: any request but the page itself (and, served, its own origin's) is
  // a failure.
  const served = /^https?:\/\//.test(pagePath);
  const pageUrl = served ? pagePath : pathToFileURL(pagePath).href;
  await context.route("**/*", (route) => {
    const url = route.request().url();
    if (url === pageUrl || (served && new URL(url).origin === new URL(pageUrl).origin)) return route.continue();
    problems.push(`the page fetched ${url}`);
    return route.abort();
  });
  const page = await context.newPage();
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  page.on("console", (message) => {
    if (message.type() === "error") problems.push(`console error: ${message.text()}`);
  });
  await page.goto(pageUrl);
  await page.waitForFunction(() => document.body.dataset.rendered === "true", null, { timeout: 10_000 });

  const rows = await page.locator(".row.span").count();
  if (rows !== expected.spans.length) {
    problems.push(`${rows} span rows drawn, ${expected.spans.length} spans expected`);
  }
  const bars = [];
  for (const span of expected.spans) {
    const row = page.locator(`.row.span[data-span-id="${span.id}"]`);
    const count = await row.count();
    if (count !== 1) {
      problems.push(`span ${span.id} (${span.name}): ${count} rows`);
      continue;
    }
    const name = await row.locator(".name").textContent();
    if (name !== span.name) problems.push(`span ${span.id}: the row says ${JSON.stringify(name)}, not ${JSON.stringify(span.name)}`);
    if (!(await row.isVisible())) problems.push(`span ${span.id} (${span.name}): row not visible`);
    const bar = row.locator(".bar");
    const box = await bar.boundingBox();
    const lane = await row.locator(".timeline").boundingBox();
    if (!box || !lane || box.width < 1 || box.height < 1) {
      problems.push(`span ${span.id} (${span.name}): no bar drawn`);
      continue;
    }
    if (box.x < lane.x - 0.5 || box.x + box.width > lane.x + lane.width + 0.5) {
      problems.push(`span ${span.id} (${span.name}): bar outside the timeline (${JSON.stringify(box)} in ${JSON.stringify(lane)})`);
    }
    const colour = await bar.evaluate((node) => getComputedStyle(node).backgroundColor);
    bars.push({ span, x: Math.floor(box.x + box.width / 2), y: Math.floor(box.y + box.height / 2), colour: rgb(colour) });
  }

  const nodes = new Set(expected.edges.flat());
  for (const node of nodes) {
    if (!(await page.locator(`[data-node="${node}"]`).isVisible())) problems.push(`service map: node ${node} not visible`);
  }
  for (const [from, to] of expected.edges) {
    if ((await page.locator(`[data-edge="${from} → ${to}"]`).count()) !== 1) problems.push(`service map: no edge ${from} → ${to}`);
  }
  const drawnNodes = await page.locator("[data-node]").count();
  if (drawnNodes !== nodes.size) problems.push(`service map: ${drawnNodes} nodes drawn, ${nodes.size} expected`);

  // The screenshot test: each bar's colour is in the picture where the bar is.
  const png = await page.screenshot({ path: screenshotPath, fullPage: true });
  const pixels = await readPixels(context, png, bars.map(({ x, y }) => [x, y]));
  bars.forEach((bar, i) => {
    const seen = pixels[i];
    if (!seen || seen.some((channel, c) => Math.abs(channel - bar.colour[c]) > 8)) {
      problems.push(`screenshot: span ${bar.span.id} (${bar.span.name}) at (${bar.x}, ${bar.y}) is rgb(${seen}), its bar is rgb(${bar.colour})`);
    }
  });

  if (problems.length) {
    console.error(problems.join("\n"));
    process.exitCode = 1;
  } else {
    console.log(JSON.stringify({ spans: bars.length, nodes: drawnNodes, edges: expected.edges.length, screenshot: screenshotPath }));
  }
} finally {
  await browser.close();
}

function rgb(css) {
  const match = css.match(/rgba?\((\d+),\s*(\d+),\s*(\d+)/);
  return match ? match.slice(1, 4).map(Number) : [-1, -1, -1];
}

// Decodes the PNG in a blank page (no network) and reads the pixel at each point.
async function readPixels(context, png, points) {
  const page = await context.newPage();
  try {
    return await page.evaluate(async ({ base64, points }) => {
      const image = new Image();
      image.src = `data:image/png;base64,${base64}`;
      await image.decode();
      const canvas = new OffscreenCanvas(image.width, image.height);
      const ctx = canvas.getContext("2d");
      ctx.drawImage(image, 0, 0);
      return points.map(([x, y]) => Array.from(ctx.getImageData(x, y, 1, 1).data.slice(0, 3)));
    }, { base64: Buffer.from(png).toString("base64"), points });
  } finally {
    await page.close();
  }
}
