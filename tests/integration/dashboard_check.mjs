// Drives Debian's chromium with playwright-core: opens the dashboard, waits for the figures to
// move, then prints what the page shows as JSON and saves a screenshot.
// usage: node dashboard_check.mjs URL SCREENSHOT_PATH EXPECTED_LANDED_PER_SOURCE
import { chromium } from "playwright-core";

const [url, screenshot, expected] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  await page.goto(url);
  const landed = (source) => page.locator(`[data-figure="${source}-landed"]`).textContent();
  await page.waitForSelector('[data-figure="clickstream-landed"]', { timeout: 30000 });
  const first = Number((await landed("clickstream")).replace(/,/g, ""));
  await page.waitForFunction(
    (n) => Number(document.querySelector('[data-figure="clickstream-landed"]').textContent.replace(/,/g, "")) > n,
    first, { timeout: 30000 },
  );
  const moved = Number((await landed("clickstream")).replace(/,/g, ""));
  await page.waitForFunction(
    (target) => ["clickstream", "mobile", "sensors"].every((s) => {
      const cell = document.querySelector(`[data-figure="${s}-landed"]`);
      return cell && Number(cell.textContent.replace(/,/g, "")) >= target;
    }),
    Number(expected), { timeout: 60000 },
  );
  const final = {};
  for (const source of ["clickstream", "mobile", "sensors"]) {
    final[source] = Number((await landed(source)).replace(/,/g, ""));
  }
  await page.waitForFunction(() => document.querySelector('[data-figure="clickstream-lag"]').textContent === "0");
  const lag = await page.locator('[data-figure="clickstream-lag"]').textContent();
  await page.fill("#lookup-key", "does-not-exist");
  await page.click('#lookup button[type="submit"]');
  await page.waitForFunction(() => !document.querySelector("#lookup-result").textContent.startsWith("Enter"));
  const lookup = await page.locator("#lookup-result").textContent();
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(JSON.stringify({ first, moved, final, lag, lookup }));
} finally {
  await browser.close();
}
