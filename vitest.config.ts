import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Transpiles src/ once for the tests that run the real `recrypt` process (and the MX's
    // worker threads); says how a test process ended when Vitest did not end it.
    globalSetup: ['test/setup/cli-build.ts', 'test/setup/test-process-exits.ts'],
    // Tests start real servers (redis-server, Dovecot, our own) and run real clients
    // (openssl, imaplib, swaks): give them room, and keep files in separate processes.
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // Vitest's default is one fewer than the cores: a single file at a time on the 2-core
    // CI machine, while most of a file's time is spent waiting on servers and clients.
    // Two at a time roughly halves the run; every test picks free ports from the OS and
    // its own data directories, so files do not share state.
    maxWorkers: 2,
    reporters: ['default'],
  },
});
