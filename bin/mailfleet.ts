#!/usr/bin/env node
// The one binary: `mailfleet relay`, `mailfleet operator`, and the tools around them.
import { run } from '../cli/main.ts';

process.exitCode = await run(process.argv.slice(2));
