/**
 * Builds the web console (ui/) into ui/dist, which the web service serves. No Preact preset: Vite 8
 * compiles TSX with Oxc, told here to use Preact's automatic JSX runtime.
 */
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const root = fileURLToPath(new URL('.', import.meta.url));

export default defineConfig({
  root,
  base: '/',
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
  },
});
