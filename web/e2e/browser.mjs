// Debian's Chromium as every browser script here launches it (never a
// downloaded browser): headless, and without the background traffic this
// machine's closed network refuses. playwright-core gives each launch a
// fresh temporary profile (it refuses a --user-data-dir argument).

import { chromium } from "playwright-core";

export function launch() {
  return chromium.launch({
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}
