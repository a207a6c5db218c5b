import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

// The dashboard is served by the API process under /dashboard/ (see api/app.ts).
export default defineConfig({
  root: import.meta.dirname,
  base: '/dashboard/',
  plugins: [react()],
  build: { outDir: 'dist', emptyOutDir: true, sourcemap: true, manifest: true, target: 'es2022' },
});
