// The browser demo, end to end, in headless Chromium (Debian's, driven by
// playwright-core): register, log in, call /protected, recover from a 401 by
// refreshing, log out; log in again, show the account, list the sessions
// (another one started from here), revoke the other one, change the password,
// log in with the new one, set and verify an email in the Email box, delete the
// account behind its confirmation. Then email at registration and a password
// reset, with the mail read from aws-ses-v2-local: register with an email,
// enter the mailed code (a wrong one first), log in with the email, Forgot
// password?, open the mailed link (reset-password/), set a new password (the
// token leaves the address bar and is sent nowhere but POST /password/reset; a
// second use is refused), back to the demo: the old password fails, the new one
// works, and the session of another device has ended. Then two-factor
// authentication on a new user: enable it (the QR code must encode the
// otpauth:// URI), confirm with a code computed here from the secret shown (a
// wrong one first), keep the 10 recovery codes; log in: the password alone asks
// for a second step, where the confirmation's code is refused (a code counts
// once), a recovery code works, a forged mfa_token starts the login over, and a
// code of the next 30-second step works; new recovery codes and disabling, with
// the password. Then passkeys on a new user, in Chromium's own WebAuthn with a
// virtual authenticator (DevTools protocol: CTAP2, built in, resident keys, user
// verification): with none on the device the login says so; add one from the
// Passkeys box (a second on the same device is refused by the browser), log
// out, log in with it with nothing typed (amr hwk+user, the account view of
// that user), again (the signature counter moves on), remove it: the device
// still offers it, the login fails with a visible error. Then the recent
// activity of a new user (GET /account/events): a failed and a good login,
// newest first, with time, user agent, address and the page's own session
// marked; a page of one event at a time through More (the API's next_cursor);
// after a logout and a new login, the logout in its session. Saves screenshots.
// Run by `make test`:
//   node web/demo.test.mjs <page-url> <api-url> <screenshot.png> <ses-url>
// <page-url> must name the host localhost (WebAuthn's relying party id), as
// the API's WEBAUTHN_ORIGIN does.
// <ses-url> is aws-ses-v2-local's base URL (GET <ses-url>/store lists the mail).
import { chromium } from "playwright-core";
import assert from "node:assert/strict";
import { createHash, createHmac } from "node:crypto";
import { createRequire } from "node:module";
// The QR library the page uses (scripts/lib.sh copies this very file into web/vendor/).
const qrcode = createRequire(import.meta.url)("qrcode-generator");

const [pageUrl, apiUrl, screenshot, sesUrl] = process.argv.slice(2);
if (!pageUrl || !apiUrl || !screenshot || !sesUrl) {
  console.error("usage: node web/demo.test.mjs <page-url> <api-url> <screenshot.png> <ses-url>\n" +
    "  <ses-url>: the base URL of aws-ses-v2-local (e.g. http://127.0.0.1:8105), where the API's mail goes");
  process.exit(2);
}
const ses = sesUrl.replace(/\/+$/, "");
assert.equal(new URL(pageUrl).hostname, "localhost", "open the page at localhost: WebAuthn refuses an IP address as relying party id");
const sibling = (suffix) => screenshot.replace(/(\.png)?$/i, `-${suffix}.png`);

// The mail aws-ses-v2-local holds for an address, oldest first.
async function mailsTo(address) {
  let r;
  try {
    r = await fetch(`${ses}/store`);
  } catch (e) {
    throw new Error(`aws-ses-v2-local does not answer at ${ses} (GET /store): ${e.cause ?? e}`);
  }
  assert.equal(r.status, 200, `GET ${ses}/store`);
  const { emails } = await r.json();
  assert.ok(Array.isArray(emails), `GET ${ses}/store has no "emails" list`);
  const want = address.toLowerCase();
  return emails.filter((m) => (m.destination?.to ?? []).some((to) => {
    const t = to.toLowerCase();
    return t === want || t.endsWith(`<${want}>`);
  }));
}
// The newest mail to an address that `matches`, waiting for it a while.
async function mail(address, matches, what) {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const found = (await mailsTo(address)).filter(matches);
    if (found.length) return found[found.length - 1];
    if (Date.now() > deadline) assert.fail(`no ${what} mail to ${address} in aws-ses-v2-local (${ses}/store)`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
const text = (m) => m.body?.text ?? "";
// The verification code: the text body's only run of six digits.
const sixDigits = (m) => (text(m).match(/\d+/g) ?? []).filter((run) => run.length === 6);
const hasCode = (m) => sixDigits(m).length > 0;
function codeIn(m) {
  const codes = sixDigits(m);
  assert.equal(codes.length, 1, `one run of six digits in the verification mail: ${JSON.stringify(text(m))}`);
  return codes[0];
}
const RESET_LINK = /(https?:\/\/[^\s<>"']*?)\/reset-password#token=([A-Za-z0-9_-]+)/;
const hasLink = (m) => RESET_LINK.test(text(m));

// TOTP (RFC 6238) as an authenticator app computes it: HMAC-SHA-1, 6 digits, 30-second steps.
const STEP = 30;
function base32(secret) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  const bytes = [];
  let bits = 0, value = 0;
  for (const ch of secret.replace(/=+$/, "").toUpperCase()) {
    const i = alphabet.indexOf(ch);
    assert.ok(i >= 0, `not base32: ${secret}`);
    value = ((value << 5) | i) & 0xffff;
    bits += 5;
    if (bits >= 8) { bits -= 8; bytes.push((value >> bits) & 0xff); }
  }
  return Buffer.from(bytes);
}
function totp(secret, step) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const h = createHmac("sha1", base32(secret)).update(counter).digest();
  const offset = h[h.length - 1] & 0x0f;
  return String((h.readUInt32BE(offset) & 0x7fffffff) % 1_000_000).padStart(6, "0");
}
// RFC 6238's SHA-1 test vector at T = 59 s (step 1), its last six digits.
assert.equal(totp("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", 1), "287082");
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
// The current step, after waiting for the next one if fewer than 3 s of this one are left,
// so that a code computed now is still current when the API checks it.
async function freshStep() {
  const left = STEP - (Date.now() / 1000) % STEP;
  if (left < 3) await sleep(left * 1000 + 200);
  return Math.floor(Date.now() / 1000 / STEP);
}
// The first step after `step`, waiting for it to begin.
async function stepAfter(step) {
  const wait = (step + 1) * STEP * 1000 - Date.now();
  if (wait > 0) await sleep(wait + 200);
  return freshStep();
}
const claims = (jwt) => JSON.parse(Buffer.from(jwt.split(".")[1], "base64url").toString());

// Fail now, not after the first half of the test, if the mail store is not there.
await mailsTo("nobody@example.invalid");

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const errors = [];
const open = async () => {
  const p = await browser.newPage();
  p.on("pageerror", (e) => errors.push(`${p.url()}: ${e}`));
  return p;
};
// The helpers that drive one tab of the demo page.
function driver(page) {
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
  // The body of the newest response logged under a label.
  const body = async (label) => JSON.parse(await page.$$eval("#log li", (lis, label) =>
    lis.find((li) => li.querySelector("strong").textContent === label).querySelector("code").textContent, label));
  const emailStatus = async () => ({
    email: await page.getAttribute("#email-status", "data-email"),
    verified: await page.getAttribute("#email-status", "data-verified"),
  });
  const stored = () => page.evaluate(() => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }));
  return { entries, count, press, click, listed, body, emailStatus, stored };
}
// Straight to the API, as another device would.
const api = async (path, body) => {
  const r = await fetch(apiUrl.replace(/\/+$/, "") + path, {
    method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body),
  });
  return { status: r.status, json: r.status === 200 ? await r.json() : null };
};

try {
  const page = await open();
  const { entries, count, press, click, listed, body, emailStatus, stored } = driver(page);
  await page.goto(pageUrl);
  await page.fill("#api", apiUrl);
  const username = `browser-${Date.now()}`;
  const password = "lantern orbit velvet thistle";
  const newPassword = "a new horse battery staple";
  await page.fill("#username", username);

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

  // The Email box: set an address, enter the code mailed to it.
  const boxAddress = `${username}@example.com`;
  assert.deepEqual(await emailStatus(), { email: "", verified: "false" }, "GET /account showed no email");
  await page.fill("#new-email", boxAddress);
  await click("set-email", 18);
  assert.deepEqual(await emailStatus(), { email: boxAddress, verified: "false" });
  await page.fill("#email-code", codeIn(await mail(boxAddress, hasCode, "verification")));
  await click("verify-email", 19);
  assert.deepEqual(await emailStatus(), { email: boxAddress, verified: "true" });
  assert.equal((await body("POST /account/email/verify")).username, username);

  // Delete the account: a dismissed confirmation sends nothing; an accepted one deletes.
  await page.fill("#current-password", newPassword);
  page.once("dialog", (dialog) => dialog.dismiss());
  await page.click("#delete-account");
  assert.equal(await count(), 19, "no call without the confirmation");
  page.once("dialog", (dialog) => dialog.accept());
  await click("delete-account", 20);
  assert.equal(await page.textContent("#state"), "Not logged in.");
  assert.deepEqual(await emailStatus(), { email: "", verified: "" }, "a logged-out page shows no account's email");
  await click("login", 21);

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
    ["POST /account/email", 202],
    ["POST /account/email/verify", 200],
    ["DELETE /account", 204],
    ["POST /login", 401],
  ]);
  assert.equal((await body("GET /account")).username, username);
  assert.equal(await page.textContent("#state"), "Not logged in.");
  assert.equal(await stored(), "{}{}", "no token in web storage");
  assert.deepEqual(errors, []);
  await page.screenshot({ path: screenshot, fullPage: true });

  // ---- Email at registration, login by email, Forgot password? and the reset link ----
  await page.goto(pageUrl); // a fresh page: an empty log, no tokens
  await page.fill("#api", apiUrl);
  const mailUser = `browser-mail-${Date.now()}`;
  const address = `${mailUser}@example.com`;
  await page.fill("#username", mailUser);
  await page.fill("#password", password);
  await page.fill("#email", address);
  await click("register", 1);
  assert.equal((await body("POST /register")).username, mailUser);
  const code = codeIn(await mail(address, hasCode, "verification"));
  assert.equal((await mailsTo(address)).length, 1, "registering mails one code");
  await click("login", 2);
  await click("account", 3);
  assert.deepEqual(await emailStatus(), { email: address, verified: "false" });
  // A wrong code is refused; the right one verifies.
  await page.fill("#email-code", code.replace(/.$/, (d) => String((Number(d) + 1) % 10)));
  await click("verify-email", 4);
  assert.equal((await body("POST /account/email/verify")).error, "invalid_code");
  assert.deepEqual(await emailStatus(), { email: address, verified: "false" });
  await page.fill("#email-code", code);
  await click("verify-email", 5);
  assert.deepEqual(await emailStatus(), { email: address, verified: "true" });
  assert.equal(await page.inputValue("#email-code"), "", "the used code is cleared");
  await click("logout", 6);

  // Log in with the verified email (text with an "@" goes as "email").
  await page.fill("#username", address);
  await click("login", 7);
  assert.equal(await page.textContent("#state"), `Logged in as ${address} (tokens in memory).`);
  await click("logout", 8);
  // Another device's session, which the reset must end.
  const device = await api("/login", { email: address, password });
  assert.equal(device.status, 200, "POST /login with the email, from outside the page");

  // Forgot password?, by email: the 202 message is shown, a link is mailed.
  await click("forgot-password", 9);
  const forgot = await body("POST /password/forgot");
  assert.ok(forgot.message, "POST /password/forgot answers a message");
  assert.equal(await page.textContent("#forgot-message"), forgot.message);
  const resetMail = await mail(address, hasLink, "password reset");
  assert.equal((await mailsTo(address)).length, 2, "one code and one reset link were mailed");
  const [link, , token] = text(resetMail).match(RESET_LINK);
  assert.match(token, /^[A-Za-z0-9_-]{43}$/, `the reset token is 43 base64url characters: ${link}`);
  assert.ok(new URL(link), `the reset link is a URL: ${link}`);
  // The link's base is APP_URL; the page under test is served at pageUrl, with
  // reset-password/ beside index.html.
  const resetUrl = new URL(`reset-password#token=${token}`, pageUrl).href;

  const reset = await open();
  const requests = [];
  reset.on("request", (r) => requests.push(r));
  await reset.goto(resetUrl);
  assert.equal(reset.url(), new URL("reset-password/", pageUrl).href, "the token leaves the address bar");
  assert.equal(await reset.evaluate(() => location.hash), "");
  await reset.fill("#api", apiUrl);
  // The page drops data-status while a request is on its way.
  const outcome = async () => {
    await reset.waitForSelector("#result[data-status]");
    return reset.$eval("#result", (el) => [Number(el.dataset.status), el.dataset.error, el.className]);
  };
  // Two passwords that differ: nothing is sent.
  await reset.fill("#new-password", newPassword);
  await reset.fill("#repeat-password", `${newPassword}!`);
  await reset.click("#reset");
  assert.deepEqual(await outcome(), [0, "", "err"]);
  // A password the API refuses (too short): the error is shown, the link still works.
  await reset.fill("#new-password", "short");
  await reset.fill("#repeat-password", "short");
  await reset.click("#reset");
  const [refusedStatus, refusedError] = await outcome();
  assert.equal(refusedStatus, 400, await reset.textContent("#result"));
  assert.notEqual(refusedError, "invalid_token", "a refused password leaves the token usable");
  assert.equal(await reset.isDisabled("#reset"), false, "the form stays open after a refused password");
  await reset.fill("#new-password", newPassword);
  await reset.fill("#repeat-password", newPassword);
  await reset.click("#reset");
  assert.deepEqual(await outcome(), [204, "", "ok"], await reset.textContent("#result"));
  assert.equal(await reset.isDisabled("#reset"), true, "a used link's form is closed");
  await reset.screenshot({ path: sibling("reset-password"), fullPage: true });
  // The token went in the body of POST /password/reset only: not in any URL, nor anywhere else.
  const posts = requests.filter((r) => r.method() === "POST");
  assert.deepEqual(posts.map((r) => r.url()), Array(2).fill(`${apiUrl.replace(/\/+$/, "")}/password/reset`), "two POSTs from the reset page");
  assert.deepEqual(posts.map((r) => JSON.parse(r.postData())), [{ token, new_password: "short" }, { token, new_password: newPassword }]);
  for (const r of requests) {
    assert.ok(!r.url().includes(token), `the token is in the URL of a request: ${r.method()} ${r.url()}`);
    assert.ok(posts.includes(r) || !(r.postData() ?? "").includes(token), `the token is sent to ${r.url()}`);
    assert.ok(!Object.values(await r.allHeaders()).some((v) => v.includes(token)), `the token is in a header to ${r.url()}`);
  }
  // Every session ended, the other device's too.
  assert.equal((await api("/refresh", { refresh_token: device.json.refresh_token })).status, 401, "the reset ends every session");

  // The link again, in another tab: a token works once.
  const again = await open();
  await again.goto(resetUrl);
  await again.fill("#api", apiUrl);
  await again.fill("#new-password", "yet another horse battery staple");
  await again.fill("#repeat-password", "yet another horse battery staple");
  await again.click("#reset");
  await again.waitForSelector("#result[data-status]");
  assert.deepEqual(await again.$eval("#result", (el) => [Number(el.dataset.status), el.dataset.error]), [400, "invalid_token"]);
  assert.equal(await again.isDisabled("#reset"), true, "a dead link's form is closed");
  await again.close();
  // A page without a token says so and sends nothing.
  const bare = await open();
  await bare.goto(new URL("reset-password/", pageUrl).href);
  assert.equal(await bare.getAttribute("#result", "data-status"), "0");
  assert.equal(await bare.isDisabled("#reset"), true);
  await bare.close();

  // Back to the demo from the reset page, and log in there: the old password fails, the new one works.
  await reset.click("#back");
  await reset.waitForSelector("#login");
  assert.equal(reset.url(), new URL(pageUrl).href);
  const demo = driver(reset);
  await reset.fill("#api", apiUrl);
  await reset.fill("#username", address);
  await reset.fill("#password", password);
  await demo.click("login", 1);
  assert.equal((await demo.body("POST /login")).error, "invalid_credentials", "the old password is refused");
  await reset.fill("#password", newPassword);
  await demo.click("login", 2);
  await demo.click("account", 3);
  assert.deepEqual(await demo.emailStatus(), { email: address, verified: "true" });
  assert.equal((await demo.body("GET /account")).username, mailUser);
  await demo.click("logout", 4);
  assert.deepEqual((await demo.entries()).reverse(), [
    ["POST /login", 401],
    ["POST /login", 200],
    ["GET /account", 200],
    ["POST /logout", 204],
  ]);

  assert.deepEqual((await entries()).reverse(), [
    ["POST /register", 201],
    ["POST /login", 200],
    ["GET /account", 200],
    ["POST /account/email/verify", 400],
    ["POST /account/email/verify", 200],
    ["POST /logout", 204],
    ["POST /login", 200],
    ["POST /logout", 204],
    ["POST /password/forgot", 202],
  ]);
  await page.screenshot({ path: sibling("email"), fullPage: true });
  for (const p of [page, reset]) assert.equal(await driver(p).stored(), "{}{}", "no token in web storage");
  assert.deepEqual(errors, []);

  // ---- Two-factor authentication: enable, log in with a code and a recovery code, disable ----
  await page.goto(pageUrl); // a fresh page: an empty log, no tokens
  await page.fill("#api", apiUrl);
  const totpUser = `browser-totp-${Date.now()}`;
  await page.fill("#username", totpUser);
  await page.fill("#password", password);
  await click("register", 1);
  await click("login", 2);
  const totpState = () => page.getAttribute("#totp-status", "data-totp");
  const message = async (id) => [await page.getAttribute(`#${id}`, "data-error"), await page.textContent(`#${id}`)];
  assert.equal(await totpState(), "false", "a login by the password alone: no second factor");
  assert.equal(await page.isHidden("#totp-manage"), true);

  // Enable: the secret in text and the QR code of the otpauth:// URI.
  await click("totp-enable", 3);
  assert.equal(await page.isVisible("#totp-setup"), true);
  const secret = await page.textContent("#totp-secret");
  assert.match(secret, /^[A-Z2-7]{32}$/, "a base32 secret of 160 bits");
  const enroll = await body("POST /mfa/totp");
  assert.equal(enroll.secret, secret);
  const uri = new URL(enroll.otpauth_uri);
  assert.equal(uri.protocol, "otpauth:");
  assert.equal(uri.searchParams.get("secret"), secret);
  assert.ok(decodeURIComponent(uri.pathname).includes(totpUser), `the URI names the user: ${enroll.otpauth_uri}`);
  assert.equal(await page.isVisible("#totp-qr svg"), true, "the QR code is shown");
  assert.ok((await page.locator("#totp-qr svg").boundingBox()).width >= 100, "the QR code is large enough to scan");
  const shown = await page.$eval("#totp-qr svg", (svg) => ({
    modules: Number(svg.dataset.modules), size: svg.viewBox.baseVal.width, d: svg.querySelector("path").getAttribute("d"),
  }));
  const qr = qrcode(0, "M");
  qr.addData(enroll.otpauth_uri);
  qr.make();
  assert.equal(shown.modules, qr.getModuleCount());
  const margin = (shown.size - shown.modules) / 2;
  const drawn = new Set([...shown.d.matchAll(/M(\d+),(\d+)/g)].map(([, x, y]) => `${y - margin},${x - margin}`));
  const dark = new Set();
  for (let r = 0; r < qr.getModuleCount(); r++) for (let c = 0; c < qr.getModuleCount(); c++) if (qr.isDark(r, c)) dark.add(`${r},${c}`);
  assert.deepEqual(drawn, dark, "the QR code encodes otpauth_uri");
  await page.screenshot({ path: sibling("totp"), fullPage: true });

  // Confirm: a wrong code is refused, the current one turns the factor on and shows 10 recovery codes.
  const nearby = (step) => [-2, -1, 0, 1, 2].map((d) => totp(secret, step + d));
  let wrong = "000000";
  while (nearby(Math.floor(Date.now() / 1000 / STEP)).includes(wrong)) wrong = String(Number(wrong) + 1).padStart(6, "0");
  await page.fill("#totp-confirm-code", wrong);
  await press("#totp-confirm", 4);
  assert.equal((await message("totp-message"))[0], "invalid_code");
  assert.equal(await page.isVisible("#totp-setup"), true, "a wrong code leaves the setup open");
  const confirmStep = await freshStep();
  const confirmCode = totp(secret, confirmStep);
  await page.fill("#totp-confirm-code", confirmCode);
  await press("#totp-confirm", 5);
  const recoveryCodes = await page.$$eval("#recovery-code-list li", (lis) => lis.map((li) => li.textContent));
  assert.equal(recoveryCodes.length, 10, "10 recovery codes");
  for (const c of recoveryCodes) assert.match(c, /^[0-9a-z]{4}(-[0-9a-z]{4}){3}$/i);
  assert.equal(new Set(recoveryCodes).size, 10);
  assert.deepEqual((await body("POST /mfa/totp/confirm")).recovery_codes, recoveryCodes);
  assert.equal(await page.isVisible("#recovery-codes"), true);
  assert.equal(await page.isHidden("#totp-setup"), true, "the setup closes");
  assert.equal(await page.textContent("#totp-secret"), "", "the secret leaves the page");
  assert.equal(await totpState(), "true");
  assert.equal(await page.isHidden("#totp-enable"), true);
  assert.equal(await page.isVisible("#totp-manage"), true);
  await click("account", 6);
  assert.equal((await body("GET /account")).mfa?.totp, true, "GET /account shows mfa.totp");
  assert.equal(await totpState(), "true");
  await click("logout", 7);
  assert.equal(await page.isHidden("#recovery-codes"), true, "recovery codes are shown once");

  // The password alone: a second step, no tokens yet.
  await click("login", 8);
  assert.equal((await body("POST /login")).error, "mfa_required");
  assert.equal(await page.isVisible("#mfa-step"), true);
  assert.equal(await page.isVisible("#mfa-code"), true);
  assert.equal(await page.textContent("#state"), "Not logged in.");
  assert.equal(await stored(), "{}{}", "no mfa_token in web storage");
  // The confirmation's code again: a code counts once.
  await page.fill("#mfa-code", confirmCode);
  await press("#mfa-submit", 9);
  assert.equal((await message("mfa-message"))[0], "invalid_code");
  assert.equal(await page.isVisible("#mfa-step"), true, "a wrong code leaves the step open");
  // A recovery code, typed loosely (upper case, spaces for dashes).
  await page.click("#mfa-switch");
  assert.equal(await page.isVisible("#mfa-recovery-code"), true);
  assert.equal(await page.isHidden("#mfa-code"), true);
  await page.fill("#mfa-recovery-code", recoveryCodes[0].toUpperCase().replaceAll("-", " "));
  await press("#mfa-submit", 10);
  assert.equal(await page.isHidden("#mfa-step"), true);
  assert.equal(await page.textContent("#state"), `Logged in as ${totpUser} (tokens in memory).`);
  assert.deepEqual(claims((await body("POST /login/mfa")).access_token).amr, ["pwd", "otp"]);
  assert.equal(await totpState(), "true");
  await click("logout", 11);

  // A forged mfa_token: the step closes, the login starts over.
  await click("login", 12);
  await page.evaluate(() => { mfaToken = "forged.mfa.token"; });
  await page.fill("#mfa-code", "123456");
  await press("#mfa-submit", 13);
  assert.equal((await message("mfa-message"))[0], "invalid_token");
  assert.equal(await page.isHidden("#mfa-step"), true, "invalid_token closes the step");
  assert.equal(await page.textContent("#state"), "Not logged in.");

  // A code of the next step (the confirmation used this one), typed in the app's code field.
  await click("login", 14);
  assert.equal(await page.isVisible("#mfa-code"), true, "a new login asks for the app's code again");
  const loginStep = await stepAfter(confirmStep);
  await page.fill("#mfa-code", totp(secret, loginStep));
  await press("#mfa-submit", 15);
  assert.equal(await page.isHidden("#mfa-step"), true);
  assert.deepEqual(await message("mfa-message"), ["", ""]);
  assert.equal(await page.textContent("#state"), `Logged in as ${totpUser} (tokens in memory).`);
  assert.deepEqual(claims((await body("POST /login/mfa")).access_token).amr, ["pwd", "otp"]);
  await click("account", 16);
  assert.equal(await totpState(), "true");

  // New recovery codes, then disable, each with the password (neither given: nothing is sent).
  await page.click("#totp-new-codes");
  assert.equal(await page.textContent("#totp-message"), "Enter a current code from the app, or the password: one of the two.");
  assert.equal(await count(), 16);
  await page.fill("#totp-manage-password", password);
  await press("#totp-new-codes", 17);
  const newCodes = await page.$$eval("#recovery-code-list li", (lis) => lis.map((li) => li.textContent));
  assert.equal(newCodes.length, 10);
  assert.ok(newCodes.every((c) => !recoveryCodes.includes(c)), "a new set of recovery codes");
  await page.fill("#totp-manage-password", password);
  await press("#totp-disable", 18);
  assert.equal(await totpState(), "false");
  assert.equal(await page.isHidden("#recovery-codes"), true);
  assert.equal(await page.isVisible("#totp-enable"), true);
  await click("logout", 19);
  // The password alone logs in again.
  await click("login", 20);
  assert.equal(await page.isHidden("#mfa-step"), true);
  assert.ok(!claims((await body("POST /login")).access_token).amr?.includes("otp"));
  await click("logout", 21);
  assert.deepEqual((await entries()).reverse(), [
    ["POST /register", 201],
    ["POST /login", 200],
    ["POST /mfa/totp", 200],
    ["POST /mfa/totp/confirm", 400],
    ["POST /mfa/totp/confirm", 200],
    ["GET /account", 200],
    ["POST /logout", 204],
    ["POST /login", 403],
    ["POST /login/mfa", 401],
    ["POST /login/mfa", 200],
    ["POST /logout", 204],
    ["POST /login", 403],
    ["POST /login/mfa", 401],
    ["POST /login", 403],
    ["POST /login/mfa", 200],
    ["GET /account", 200],
    ["POST /mfa/recovery-codes", 200],
    ["DELETE /mfa/totp", 204],
    ["POST /logout", 204],
    ["POST /login", 200],
    ["POST /logout", 204],
  ]);
  assert.equal(await stored(), "{}{}", "no token in web storage");
  assert.deepEqual(errors, []);

  // ---- Passkeys: add one, log in with it (no username typed) twice, remove it ----
  await page.goto(pageUrl); // a fresh page: an empty log, no tokens
  await page.fill("#api", apiUrl);
  const keyUser = `browser-passkey-${Date.now()}`;
  await page.fill("#username", keyUser);
  await page.fill("#password", password);
  // The tab's WebAuthn answered by a virtual authenticator: a platform one (like
  // Touch ID or Windows Hello) that keeps resident keys and verifies its user.
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("WebAuthn.enable");
  const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: { protocol: "ctap2", transport: "internal", hasResidentKey: true, hasUserVerification: true,
               isUserVerified: true, automaticPresenceSimulation: true },
  });
  const held = async () => (await cdp.send("WebAuthn.getCredentials", { authenticatorId })).credentials;
  const passkeyState = () => page.getAttribute("#passkey-status", "data-count");
  const listedKeys = () => page.$$eval("#passkey-list li", (lis) => lis.map((li) => ({ id: li.dataset.id, name: li.dataset.name, text: li.textContent })));
  const state = () => page.textContent("#state");
  // What the page sends to the finish routes.
  const finishes = [];
  page.on("request", (r) => { if (/\/(passkeys\/register|login\/passkey)\/finish$/.test(r.url())) finishes.push(JSON.parse(r.postData())); });

  // No passkey on the device yet: the browser finds none, the page says so, nothing reaches finish.
  await click("passkey-login", 2);
  assert.deepEqual(await message("passkey-login-message"),
    ["NotAllowedError", "No passkey was used: the browser's prompt was cancelled or timed out, or the device holds none for this site."]);
  assert.equal(await state(), "Not logged in.");
  assert.equal(finishes.length, 0);
  assert.equal(await page.isHidden("#passkey-manage"), true, "no passkey controls while logged out");
  await click("register", 3);
  await click("login", 4);
  assert.equal(await page.isVisible("#passkey-add"), true, "a login shows the Passkeys box");
  assert.equal(await passkeyState(), "");
  await click("passkeys", 5);
  assert.deepEqual(await listedKeys(), []);
  assert.equal(await passkeyState(), "0");

  // Add a passkey: the options ask for a resident key and user verification; the
  // browser makes it, the API stores it, the page lists it.
  await page.fill("#passkey-name", "  Virtual laptop  ");
  await click("passkey-add", 8);
  const creation = (await body("POST /passkeys/register/start")).publicKey;
  assert.equal(creation.authenticatorSelection?.residentKey, "required", JSON.stringify(creation));
  assert.equal(creation.authenticatorSelection?.userVerification, "required");
  assert.equal(creation.rp?.id, "localhost");
  assert.equal(creation.user?.name, keyUser);
  const added = await body("POST /passkeys/register/finish");
  assert.equal(added.name, "Virtual laptop", "the name is trimmed");
  assert.match(added.id, /^[A-Za-z0-9_-]{43}$/);
  assert.equal(added.last_used_at, null);
  const [made] = finishes;
  assert.deepEqual(Object.keys(made).sort(), ["challenge_id", "credential", "name"]);
  assert.equal(made.credential.type, "public-key");
  assert.equal(await page.inputValue("#passkey-name"), "", "the name field is cleared");
  assert.match(await page.textContent("#passkey-message"), /^Passkey "Virtual laptop" added/);
  let keys = await listedKeys();
  assert.deepEqual(keys.map(({ id, name }) => ({ id, name })), [{ id: added.id, name: "Virtual laptop" }]);
  assert.match(keys[0].text, /never used to log in/);
  assert.equal(await passkeyState(), "1");
  // The device holds it as a resident (discoverable) key for localhost, for this user,
  // under the id the API names it by: base64url(SHA-256(credential id)).
  let [credential] = await held();
  assert.equal((await held()).length, 1, "one credential on the authenticator");
  assert.equal(credential.isResidentCredential, true, "a resident key");
  assert.equal(credential.rpId, "localhost");
  assert.equal(createHash("sha256").update(Buffer.from(credential.credentialId, "base64")).digest("base64url"), added.id);
  await click("account", 9);
  const keyAccount = await body("GET /account");
  assert.equal(keyAccount.mfa?.passkeys, 1, "GET /account counts the passkey");
  assert.equal(Buffer.from(credential.userHandle, "base64").toString("hex"), keyAccount.id.replaceAll("-", ""),
    "the user handle is the account's id");
  let signCount = credential.signCount;
  await page.screenshot({ path: sibling("passkeys"), fullPage: true });

  // The same device again: the browser refuses (excludeCredentials), nothing is sent to finish.
  await click("passkey-add", 11);
  assert.equal((await message("passkey-message"))[0], "InvalidStateError", await page.textContent("#passkey-message"));
  assert.equal((await held()).length, 1);
  assert.equal(finishes.length, 1);
  await click("logout", 12);
  assert.equal(await page.isHidden("#passkey-manage"), true);

  // Log in with it, nothing typed: the page is logged in as the passkey's user.
  await page.fill("#username", "");
  await page.fill("#password", "");
  const passkeyLogin = async (n) => {
    await click("passkey-login", n);
    const request = (await body("POST /login/passkey/start")).publicKey;
    assert.equal(request.userVerification, "required", JSON.stringify(request));
    assert.equal(request.rpId, "localhost");
    assert.ok(!request.allowCredentials?.length, "no allowCredentials: the device offers its passkey for the site");
    const sent = finishes[finishes.length - 1];
    assert.deepEqual(Object.keys(sent).sort(), ["challenge_id", "credential"], "no username sent");
  };
  await passkeyLogin(15);
  assert.deepEqual(await message("passkey-login-message"), ["", ""]);
  assert.equal(await state(), `Logged in as ${keyUser} (tokens in memory).`);
  const keyTokens = await body("POST /login/passkey/finish");
  assert.deepEqual(claims(keyTokens.access_token).amr, ["hwk", "user"]);
  assert.equal(claims(keyTokens.access_token).username, keyUser);
  assert.equal((await body("GET /account")).username, keyUser, "the page shows the passkey's account");
  assert.equal(await page.getAttribute("#totp-status", "data-totp"), "false");
  assert.equal(await passkeyState(), "1");
  assert.equal(await page.inputValue("#username"), "", "nothing was typed");
  [credential] = await held();
  assert.ok(credential.signCount > signCount, `the counter moves on: ${signCount} then ${credential.signCount}`);
  signCount = credential.signCount;
  // A refresh keeps how the session began.
  await click("refresh", 16);
  assert.deepEqual(claims((await body("POST /refresh")).access_token).amr, ["hwk", "user"]);
  await click("passkeys", 17);
  keys = await listedKeys();
  assert.equal(keys.length, 1);
  assert.match(keys[0].text, /last used/);
  const used = (await body("GET /passkeys")).passkeys[0].last_used_at;
  assert.ok(Number.isInteger(used) && used >= added.created_at, `last_used_at ${used}`);
  await click("logout", 18);

  // A second login with it: the counter moves on again and the API takes it.
  await passkeyLogin(21);
  assert.equal(await state(), `Logged in as ${keyUser} (tokens in memory).`);
  assert.deepEqual(claims((await body("POST /login/passkey/finish")).access_token).amr, ["hwk", "user"]);
  [credential] = await held();
  assert.ok(credential.signCount > signCount, `the counter moves on: ${signCount} then ${credential.signCount}`);

  // Remove it: the list empties; the device still holds it, but it logs in no more.
  await click("passkeys", 22);
  await press(`#passkey-list li[data-id="${added.id}"] button.remove`, 23);
  assert.deepEqual(await listedKeys(), []);
  assert.equal(await passkeyState(), "0");
  assert.match(await page.textContent("#passkey-message"), /^Passkey "Virtual laptop" removed/);
  await click("logout", 24);
  assert.equal((await held()).length, 1, "the device keeps its copy");
  await click("passkey-login", 26);
  assert.equal(await page.isVisible("#passkey-login-message"), true, "the failure is shown");
  const [failure, failureText] = await message("passkey-login-message");
  assert.equal(failure, "invalid_credentials");
  assert.match(failureText, /does not log in here/);
  assert.equal(await state(), "Not logged in.");
  // The password still works, and clears the message.
  await page.fill("#username", keyUser);
  await page.fill("#password", password);
  await click("login", 27);
  assert.deepEqual(await message("passkey-login-message"), ["", ""]);
  assert.deepEqual(claims((await body("POST /login")).access_token).amr, ["pwd"]);
  await click("logout", 28);
  assert.deepEqual((await entries()).reverse(), [
    ["POST /login/passkey/start", 200],
    ["navigator.credentials.get", 0],
    ["POST /register", 201],
    ["POST /login", 200],
    ["GET /passkeys", 200],
    ["POST /passkeys/register/start", 200],
    ["POST /passkeys/register/finish", 201],
    ["GET /passkeys", 200],
    ["GET /account", 200],
    ["POST /passkeys/register/start", 200],
    ["navigator.credentials.create", 0],
    ["POST /logout", 204],
    ["POST /login/passkey/start", 200],
    ["POST /login/passkey/finish", 200],
    ["GET /account", 200],
    ["POST /refresh", 200],
    ["GET /passkeys", 200],
    ["POST /logout", 204],
    ["POST /login/passkey/start", 200],
    ["POST /login/passkey/finish", 200],
    ["GET /account", 200],
    ["GET /passkeys", 200],
    ["DELETE /passkeys/{id}", 204],
    ["POST /logout", 204],
    ["POST /login/passkey/start", 200],
    ["POST /login/passkey/finish", 401],
    ["POST /login", 200],
    ["POST /logout", 204],
  ]);
  assert.equal(finishes.length, 4, "one registration and three logins reached the API");
  await page.screenshot({ path: sibling("passkeys-removed"), fullPage: true });
  assert.equal(await stored(), "{}{}", "no token in web storage");
  assert.deepEqual(errors, []);
  await cdp.send("WebAuthn.removeVirtualAuthenticator", { authenticatorId });

  // ---- Recent activity: the account's events, newest first, a page at a time ----
  await page.goto(pageUrl); // a fresh page: an empty log, no tokens
  await page.fill("#api", apiUrl);
  const eventsUser = `browser-events-${Date.now()}`;
  await page.fill("#username", eventsUser);
  await page.fill("#password", password);
  // What the page asks GET /account/events for: [limit, cursor].
  const asked = [];
  page.on("request", (r) => {
    const url = new URL(r.url());
    if (r.method() === "GET" && url.pathname === "/account/events") asked.push([url.searchParams.get("limit"), url.searchParams.get("cursor")]);
  });
  const activity = () => page.$$eval("#event-list li", (lis) => lis.map((li) => ({
    type: li.dataset.type, at: Number(li.dataset.at), session: li.dataset.session,
    current: li.classList.contains("current"), text: li.textContent,
  })));
  const types = async () => (await activity()).map((e) => e.type);
  await click("register", 1);
  // A wrong password of an existing username is an event of that user; then the right one.
  await page.fill("#password", "not the password at all");
  await click("login", 2);
  await page.fill("#password", password);
  const loginTime = Math.floor(Date.now() / 1000);
  await click("login", 3);
  const firstSid = claims((await body("POST /login")).access_token).sid;
  assert.equal(await page.isVisible("#event-list li"), false, "nothing listed before asking");
  await click("events", 4);
  const [succeeded, failedLogin] = await activity();
  assert.deepEqual(await types(), ["login_succeeded", "login_failed"], "newest first");
  assert.equal(succeeded.session, firstSid, "the login's event names its session");
  assert.equal(succeeded.current, true, "the page's own session is marked");
  assert.ok(succeeded.at >= loginTime - 1 && succeeded.at <= Date.now() / 1000 + 1, `at ${succeeded.at}, logged in at ${loginTime}`);
  assert.ok(failedLogin.at <= succeeded.at);
  assert.equal(failedLogin.session, "", "a failed login has no session");
  // cargo lambda watch's request context: its own fixed address and user agent.
  assert.match(succeeded.text, /^Logged in \(login_succeeded\): .+, cargo-lambda from 127\.0\.0\.1, this session$/);
  assert.match(failedLogin.text, /^Wrong password \(login_failed\): .+, cargo-lambda from 127\.0\.0\.1$/);
  const page1 = await body("GET /account/events");
  assert.equal(page1.next_cursor, null, "two events fit in a page of 10: the last page");
  assert.deepEqual(page1.events.map((e) => e.type), ["login_succeeded", "login_failed"]);
  assert.equal(await page.isHidden("#events-more"), true, "no More on the last page");

  // A page of one at a time: More follows next_cursor until there is none.
  await page.evaluate(() => { eventsPageSize = 1; });
  await click("events", 5);
  assert.deepEqual(await types(), ["login_succeeded"], "the list starts over");
  const onePage = await body("GET /account/events");
  assert.equal(onePage.events.length, 1);
  assert.match(onePage.next_cursor ?? "", /^[A-Za-z0-9_-]+$/, "an opaque cursor to the older page");
  assert.equal(await page.isVisible("#events-more"), true, "More, while there is an older page");
  let calls = 5;
  while (await page.isVisible("#events-more")) {
    assert.ok(calls < 8, "More ends: two events take two pages, and at most an empty third");
    await click("events-more", ++calls);
  }
  assert.deepEqual(await types(), ["login_succeeded", "login_failed"], "More adds the older events below");
  assert.deepEqual(asked.slice(0, 3), [["10", null], ["1", null], ["1", onePage.next_cursor]]);
  assert.equal(asked.length, calls - 3, "one request per press");
  await page.screenshot({ path: sibling("activity"), fullPage: true });

  // Log out (the list goes with the tokens), log in again: the logout is there, in its session.
  await click("logout", calls + 1);
  assert.deepEqual(await types(), []);
  assert.equal(await page.isHidden("#events-more"), true);
  await click("login", calls + 2);
  await page.evaluate(() => { eventsPageSize = 10; });
  await click("events", calls + 3);
  const relisted = await activity();
  assert.deepEqual(relisted.map((e) => e.type), ["login_succeeded", "logout", "login_succeeded", "login_failed"]);
  assert.deepEqual(relisted.map((e) => e.current), [true, false, false, false], "only the new session is this page's");
  assert.equal(relisted[1].session, firstSid, "the logout names the session it ended");
  assert.notEqual(relisted[0].session, firstSid);
  assert.deepEqual((await entries()).reverse(), [
    ["POST /register", 201],
    ["POST /login", 401],
    ["POST /login", 200],
    ["GET /account/events", 200],
    ["GET /account/events", 200],
    ...Array(calls - 5).fill(["GET /account/events (more)", 200]),
    ["POST /logout", 204],
    ["POST /login", 200],
    ["GET /account/events", 200],
  ]);
  assert.equal(await stored(), "{}{}", "no token in web storage");
  assert.deepEqual(errors, []);
  console.log(`browser demo passed; screenshots: ${screenshot}, ${sibling("email")}, ${sibling("reset-password")}, ${sibling("totp")}, ` +
    `${sibling("passkeys")}, ${sibling("passkeys-removed")}, ${sibling("activity")}`);
} finally {
  await browser.close();
}
