import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Transpiles src/ once for the tests that run the real `recrypt` process.
    globalSetup: ['test/setup/cli-build.ts'],
    // Tests start real servers (redis-server, Dovecot, our own) and run real clients
    // (openssl, imaplib, swaks): give them room, and keep files in separate processes.
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    reporters: ['default'],
  },
});
