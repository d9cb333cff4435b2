// The fleet dashboard in headless chromium (Debian's, through playwright-core): run by
// scripts/browser-test.sh, which starts the central gatelet and the simulated buses and passes
// BASE, TOKEN, REFRESH_MS, VICTIM_PID (a bus to take down) and CENTRAL_PID in the environment.
// Every wait polls with a deadline; nothing sleeps a fixed time.
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const require = createRequire(new URL("../.browser-test/package.json", import.meta.url));
const { chromium } = require("playwright-core");
const { BASE, TOKEN } = process.env;
const REFRESH = Number(process.env.REFRESH_MS);
const shot = (name) => fileURLToPath(new URL(name, import.meta.url));
let passed = 0;
const check = (what, fn) => Promise.resolve(fn()).then(() => { passed++; console.log("ok - " + what); });

const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] });
const page = await browser.newPage({ viewport: { width: 1920, height: 1080 } });
const problems = [];
page.on("console", (m) => { if (m.type() === "error" && !/status of 40[13]|ERR_CONNECTION_REFUSED/.test(m.text())) problems.push(m.text()); });
page.on("pageerror", (e) => problems.push(String(e)));
page.on("response", (r) => { if (r.status() >= 400 && !/\/fleet\/positions$/.test(r.url())) problems.push(r.status() + " " + r.url()); });
const foreign = [];
page.on("request", (r) => { if (!r.url().startsWith(BASE + "/")) foreign.push(r.url()); });
const status = (id) => page.getAttribute(`#rows tr[data-id="${id}"]`, "data-status");
const count = (k) => page.textContent(`#n-${k}`);
const problemOf = async (id) => (await page.textContent(`#rows tr[data-id="${id}"] td:last-child`)).trim();

try {
  const response = await page.goto(BASE + "/__dashboard");
  await check("the page is served as HTML with a CSP", () => {
    assert.equal(response.status(), 200);
    assert.match(response.headers()["content-type"], /^text\/html/);
    assert.match(response.headers()["content-security-policy"], /default-src 'none'/);
  });
  await check("the fleet is counted: 5 ok, 3 degraded, 1 unreachable", async () => {
    await page.waitForFunction(() => document.querySelector("#n-ok").textContent === "5", null, { timeout: 10_000 });
    assert.deepEqual([await count("ok"), await count("degraded"), await count("unreachable")], ["5", "3", "1"]);
    assert.equal(await page.title(), "Depot North: fleet");
  });
  await check("every bus has a row with its status, worst first", async () => {
    const ids = await page.$$eval("#rows tr", (rows) => rows.map((r) => r.dataset.id + ":" + r.dataset.status));
    assert.deepEqual(ids, ["bus-8:unreachable", "bus-4:degraded", "bus-6:degraded", "bus-7:degraded",
      "bus-1:ok", "bus-2:ok", "bus-3:ok", "bus-5:ok", "bus-10:ok"]);
    assert.equal(await page.textContent('#rows tr[data-id="bus-1"] .badge'), "\u2714 ok", "status is text, not only colour");
    assert.equal(await page.$$eval("#rows tr > th[scope=row]", (t) => t.length), 9);
    assert.match(await page.textContent('#rows tr[data-id="bus-1"] td:nth-child(3)'), /^\d+ ms$/);
    assert.equal(await page.textContent('#rows tr[data-id="bus-1"] td:nth-child(4)'), "now");
    assert.equal(await page.textContent('#rows tr[data-id="bus-8"] td:nth-child(4)'), "never");
  });
  await check("the reasons name the sensor, the device and the circuit", async () => {
    assert.match(await problemOf("bus-4"), /sensor gps stale \(last reading \d+ s ago\)/);
    assert.match(await problemOf("bus-6"), /sensor engine down \(no reading yet\): \/dev\/ttyUSB0: No such device/);
    assert.match(await problemOf("bus-7"), /circuit open: GET \/passengers -> \/count/);
    assert.match(await problemOf("bus-8"), /connection refused/);
    assert.equal(await problemOf("bus-1"), "none");
  });
  await check("protected positions: the page asks for a token, once", async () => {
    await page.waitForSelector("#login:not([hidden])", { timeout: 10_000 });
    assert.equal(await page.$$eval("#dots circle", (c) => c.length), 0);
    await page.fill("#token", TOKEN);
    await page.click("#login button");
    await page.waitForFunction(() => document.querySelectorAll("#dots circle").length === 8, null, { timeout: 2 * REFRESH + 1000 });
    assert.equal(await page.isHidden("#login"), true);
  });
  await check("positions: a labelled dot per bus in its status colour, inside the plot", async () => {
    const dots = await page.$$eval("#dots circle", (cs) => cs.map((c) => ({
      cls: c.getAttribute("class"), x: +c.getAttribute("cx"), y: +c.getAttribute("cy"), tip: c.textContent })));
    for (const d of dots) {
      assert.ok(d.x >= 50 && d.x <= 950 && d.y >= 40 && d.y <= 660, JSON.stringify(d));
    }
    assert.ok(dots.some((d) => d.cls === "dot st-degraded" && d.tip.startsWith("bus-6: degraded")));
    const labels = await page.$$eval("#dots text", (ts) => ts.map((t) => t.textContent));
    assert.ok(labels.includes("bus-1") && labels.includes("bus-4 \u25B2"), labels.join());
    assert.match(await page.textContent("#map-note"), /no position: bus-8$/);
  });
  await check("sorting by id is natural (bus-10 last) and says so to screen readers", async () => {
    await page.click('th[data-key="id"] button');
    const ids = await page.$$eval("#rows tr", (rows) => rows.map((r) => r.dataset.id));
    assert.deepEqual(ids, ["bus-1", "bus-2", "bus-3", "bus-4", "bus-5", "bus-6", "bus-7", "bus-8", "bus-10"]);
    assert.equal(await page.getAttribute('th[data-key="id"]', "aria-sort"), "ascending");
    assert.equal(await page.getAttribute('th[data-key="status"]', "aria-sort"), "none");
    await page.click('th[data-key="id"] button');
    assert.equal(await page.getAttribute('th[data-key="id"]', "aria-sort"), "descending");
    await page.click('th[data-key="status"] button');
  });
  let latency;
  await check(`a bus taken down turns unreachable within two refresh periods (${2 * REFRESH} ms)`, async () => {
    assert.equal(await status("bus-2"), "ok");
    const down = Date.now();
    process.kill(Number(process.env.VICTIM_PID));
    await page.waitForFunction(() => document.querySelector('#rows tr[data-id="bus-2"]').dataset.status === "unreachable",
      null, { timeout: 2 * REFRESH, polling: 50 });
    latency = Date.now() - down;
    console.log(`# bus-2 shown unreachable ${latency} ms after it went down (refresh ${REFRESH} ms)`);
    assert.deepEqual([await count("ok"), await count("unreachable")], ["4", "2"]);
    assert.match(await problemOf("bus-2"), /connection refused|connection closed|timeout/);
    assert.notEqual(await page.textContent('#rows tr[data-id="bus-2"] td:nth-child(4)'), "never");
    await page.waitForFunction(() => [...document.querySelectorAll("#dots circle")].some((c) =>
      c.getAttribute("class") === "dot st-unreachable old" && c.textContent.startsWith("bus-2: unreachable, last known")),
      null, { timeout: 2 * REFRESH, polling: 50 });
  });
  await check("latest events: per bus, critical first, losses shown", async () => {
    await page.waitForSelector('#event-rows tr[data-bus="bus-3"]', { timeout: 2 * REFRESH + 1000 });
    const rows = await page.$$eval('#event-rows tr[data-bus="bus-3"]', (trs) => trs.map((tr) =>
      [...tr.children].slice(2).map((td) => td.textContent)));
    assert.equal(rows.length, 3, JSON.stringify(rows));
    assert.equal(rows[0][0], "\u2716 door_alarm", "the critical event first, marked in text");
    assert.equal(rows[1][0], "count");
    assert.deepEqual(rows[2], ["lost", "4 events lost"]);
    assert.equal(await page.textContent("#events-note"), "");
  });
  await page.screenshot({ path: shot("../docs/dashboard.png") });
  await check("a phone gets the same page without sideways scrolling", async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    const { scroll, width } = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, width: innerWidth }));
    assert.ok(scroll <= width, `page is ${scroll} px wide on a ${width} px screen`);
    const cell = await page.$eval('#rows tr[data-id="bus-6"] td:last-child', (td) => td.getBoundingClientRect().right);
    assert.ok(cell <= width, "the problem is readable without scrolling");
    await page.screenshot({ path: shot("../.browser-test/dashboard-phone.png"), fullPage: true });
    await page.setViewportSize({ width: 1920, height: 1080 });
  });
  await check("the central itself going away shows a banner within two refresh periods", async () => {
    assert.equal(await page.isHidden("#banner"), true);
    process.kill(Number(process.env.CENTRAL_PID));
    await page.waitForSelector("#banner:not([hidden])", { timeout: 2 * REFRESH, polling: 50 });
    assert.match(await page.textContent("#banner"), /central gatelet cannot be reached since/);
    await page.screenshot({ path: shot("../.browser-test/dashboard-central-down.png") });
  });
  await check("nothing was loaded from elsewhere and no script error happened", () => {
    assert.deepEqual(foreign, []);
    assert.deepEqual(problems, []);
  });
  console.log(`# detection latency ${latency} ms`);
  console.log(`${passed} passed, 0 failed`);
} catch (e) {
  await page.screenshot({ path: shot("../.browser-test/failure.png") }).catch(() => {});
  console.error(e);
  console.log(`${passed} passed, 1 failed`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
