// The browser demo, end to end, in headless Chromium (Debian's, driven by
// playwright-core): register, log in, call /protected, recover from a 401 by
// refreshing, log out; log in again, show the account, list the sessions
// (another one started from here), revoke the other one, change the password,
// log in with the new one, delete the account behind its confirmation. Saves a
// screenshot. Run by `make test`:
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
  const username = `browser-${Date.now()}`;
  const password = "correct horse battery staple";
  const newPassword = "a new horse battery staple";
  await page.fill("#username", username);

  const entries = () => page.$$eval("#log li", (lis) => lis.map((li) => [li.querySelector("strong").textContent, Number(li.dataset.status)]));
  const count = () => page.$$eval("#log li", (lis) => lis.length);
  const press = async (selector, n) => {
    await page.click(selector);
    await page.waitForFunction((n) => document.querySelectorAll("#log li").length >= n, n);
  };
  const click = (id, n) => press(`#${id}`, n);
  // The sessions the page lists: [current, id] in order.
  const listed = async (n) => {
    await page.waitForFunction((n) => document.querySelectorAll("#session-list li").length === n, n);
    return page.$$eval("#session-list li", (lis) => lis.map((li) => [li.classList.contains("current"), li.dataset.id]));
  };
  // Straight to the API, as another device would.
  const api = async (path, body) => {
    const r = await fetch(apiUrl.replace(/\/+$/, "") + path, {
      method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body),
    });
    return { status: r.status, json: r.status === 200 ? await r.json() : null };
  };

  await click("register", 1);
  await click("login", 2);
  await click("protected", 3);
  // The access token expires: the page must refresh and retry on its own.
  await page.evaluate(() => { accessToken = "expired.or.tampered"; });
  await click("protected", 6);
  await click("logout", 7);

  // Again, with the account and its sessions. The logged-out session is not listed.
  await click("login", 8);
  await click("account", 9);
  await click("sessions", 10);
  const [first] = await listed(1);
  assert.equal(first[0], true, "the page's own session is marked current");
  assert.match(await page.textContent("#session-list li.current"), /^This session/);
  // Another device logs in; the page's access token expires on the way.
  const other = await api("/login", { username, password });
  assert.equal(other.status, 200);
  await page.evaluate(() => { accessToken = "expired.or.tampered"; });
  await click("sessions", 13);
  const two = await listed(2);
  assert.deepEqual(two.map(([current]) => current).sort(), [false, true]);
  const otherId = two.find(([current]) => !current)[1];
  await press(`#session-list li:not(.current) button.revoke`, 14);
  assert.equal((await api("/refresh", { refresh_token: other.json.refresh_token })).status, 401, "a revoked session's refresh token is refused");
  await click("sessions", 15);
  assert.deepEqual((await listed(1)).map(([current]) => current), [true]);
  assert.notEqual((await listed(1))[0][1], otherId);

  await page.fill("#current-password", password);
  await page.fill("#new-password", newPassword);
  await click("change-password", 16);
  await page.fill("#password", newPassword);
  await click("login", 17);

  // Delete the account: a dismissed confirmation sends nothing; an accepted one deletes.
  await page.fill("#current-password", newPassword);
  page.once("dialog", (dialog) => dialog.dismiss());
  await page.click("#delete-account");
  assert.equal(await count(), 17, "no call without the confirmation");
  page.once("dialog", (dialog) => dialog.accept());
  await click("delete-account", 18);
  assert.equal(await page.textContent("#state"), "Not logged in.");
  await click("login", 19);

  const log = (await entries()).reverse();
  assert.deepEqual(log, [
    ["POST /register", 201],
    ["POST /login", 200],
    ["GET /protected", 200],
    ["GET /protected", 401],
    ["POST /refresh", 200],
    ["GET /protected (after refresh)", 200],
    ["POST /logout", 204],
    ["POST /login", 200],
    ["GET /account", 200],
    ["GET /sessions", 200],
    ["GET /sessions", 401],
    ["POST /refresh", 200],
    ["GET /sessions (after refresh)", 200],
    ["DELETE /sessions/{id}", 204],
    ["GET /sessions", 200],
    ["POST /account/password", 204],
    ["POST /login", 200],
    ["DELETE /account", 204],
    ["POST /login", 401],
  ]);
  const account = await page.$$eval("#log li", (lis) => lis.find((li) => li.querySelector("strong").textContent === "GET /account").querySelector("code").textContent);
  assert.equal(JSON.parse(account).username, username);
  assert.equal(await page.textContent("#state"), "Not logged in.");
  const stored = await page.evaluate(() => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }));
  assert.equal(stored, "{}{}", "no token in web storage");
  assert.deepEqual(errors, []);
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(`browser demo passed; screenshot: ${screenshot}`);
} finally {
  await browser.close();
}
