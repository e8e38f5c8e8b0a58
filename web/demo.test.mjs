// The browser demo, end to end, in headless Chromium (Debian's, driven by
// playwright-core): register, log in, call /protected, recover from a 401 by
// refreshing, log out. Saves a screenshot. Run by `make test`:
//   node web/demo.test.mjs <page-url> <api-url> <screenshot.png>
import { chromium } from "playwright-core";
import assert from "node:assert/strict";

const [pageUrl, apiUrl, screenshot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(pageUrl);
  await page.fill("#api", apiUrl);
  await page.fill("#username", `browser-${Date.now()}`);

  const entries = () => page.$$eval("#log li", (lis) => lis.map((li) => [li.querySelector("strong").textContent, Number(li.dataset.status)]));
  const click = async (id, count) => {
    await page.click(`#${id}`);
    await page.waitForFunction((n) => document.querySelectorAll("#log li").length >= n, count);
  };

  await click("register", 1);
  await click("login", 2);
  await click("protected", 3);
  // The access token expires: the page must refresh and retry on its own.
  await page.evaluate(() => { accessToken = "expired.or.tampered"; });
  await click("protected", 6);
  await click("logout", 7);

  const log = (await entries()).reverse();
  assert.deepEqual(log, [
    ["POST /register", 201],
    ["POST /login", 200],
    ["GET /protected", 200],
    ["GET /protected", 401],
    ["POST /refresh", 200],
    ["GET /protected (after refresh)", 200],
    ["POST /logout", 204],
  ]);
  assert.equal(await page.textContent("#state"), "Not logged in.");
  const stored = await page.evaluate(() => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }));
  assert.equal(stored, "{}{}", "no token in web storage");
  assert.deepEqual(errors, []);
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(`browser demo passed; screenshot: ${screenshot}`);
} finally {
  await browser.close();
}
