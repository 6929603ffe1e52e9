/**
 * Every `recrypt` subcommand module; each exports `register(program)`. Add a module by
 * importing it here and listing it in COMMANDS.
 */
import type { Command } from 'commander';
import { register as registerBackup } from './backup.js';
import { register as registerList } from './list.js';
import { register as registerLookup } from './lookup.js';
import { register as registerOperator } from './operator.js';
import { register as registerOwner } from './owner.js';
import { register as registerStart } from './start.js';

export const COMMANDS: ReadonlyArray<(program: Command) => void> = [
  registerOperator,
  registerBackup,
  registerList,
  registerLookup,
  registerOwner,
  registerStart,
];
