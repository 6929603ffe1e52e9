/**
 * Every `recrypt` subcommand module; each exports `register(program)`. Add a module by
 * importing it here and listing it in COMMANDS.
 */
import type { Command } from 'commander';
import { register as registerOperator } from './operator.js';
import { register as registerOwner } from './owner.js';
// LEAD: `recrypt start` goes here — create ./start.ts exporting `register(program)` and add:
//   import { register as registerStart } from './start.js';
// and `registerStart` to COMMANDS below.

export const COMMANDS: ReadonlyArray<(program: Command) => void> = [
  registerOperator,
  registerOwner,
];
