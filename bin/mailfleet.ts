#!/usr/bin/env node
// The one binary: `mailfleet relay`, `mailfleet operator`, and the tools around them.
// Queue commits wait on fsync in libuv's thread pool; the default 4 threads would make
// 20 concurrent sessions queue behind each other, so the pool is sized before first use
// (hence the dynamic import below: static imports would run first).
process.env.UV_THREADPOOL_SIZE ??= '16';
const { run } = await import('../cli/main.ts');

process.exitCode = await run(process.argv.slice(2));
