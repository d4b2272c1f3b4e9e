import { defineConfig } from "vitest/config";
import react from "@vitejs/plugin-react";

// Served by the local server at /app/ (same origin as the API); deployed
// anywhere with VITE_API_BASE pointing at the HTTP API's stage URL.
export default defineConfig({
  base: "/app/",
  plugins: [react()],
  build: { outDir: "dist", sourcemap: false, chunkSizeWarningLimit: 2000 },
  test: { environment: "node", include: ["src/**/*.test.ts"] },
});
