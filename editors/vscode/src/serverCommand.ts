/**
 * Decides which command starts the language server.
 *
 * Order: the `docomplete.serverCommand` setting, then `docomplete.pythonPath`, then the
 * interpreter chosen in the Python extension, then `python3` from PATH. A Python interpreter
 * runs the server as `<python> -m server.cli lsp`, so it must have docomplete installed.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';

import { SECTION, SettingsReader } from './settings';

export interface ServerCommand {
    command: string;
    args: string[];
    /** Where the command came from, for the log ("setting docomplete.pythonPath", …). */
    source: string;
}

export const PYTHON_MODULE_ARGS = ['-m', 'server.cli', 'lsp'];

/** Finds the interpreter selected in the Python extension, if it is installed. */
export type InterpreterLookup = (resource?: vscode.Uri) => Promise<string | undefined>;

/** Resolves the server command from settings, falling back to the given interpreter lookup. */
export async function resolveServerCommand(
    config: SettingsReader,
    findInterpreter: InterpreterLookup,
    resource?: vscode.Uri,
): Promise<ServerCommand> {
    const explicit = (config.get<string[]>('serverCommand') ?? []).filter((part) => part !== '');
    if (explicit.length > 0) {
        return {
            command: explicit[0],
            args: explicit.slice(1),
            source: `setting ${SECTION}.serverCommand`,
        };
    }
    const pythonPath = (config.get<string>('pythonPath') ?? '').trim();
    if (pythonPath !== '') {
        return {
            command: pythonPath,
            args: [...PYTHON_MODULE_ARGS],
            source: `setting ${SECTION}.pythonPath`,
        };
    }
    const selected = await findInterpreter(resource);
    if (selected) {
        return {
            command: selected,
            args: [...PYTHON_MODULE_ARGS],
            source: 'the Python extension’s selected interpreter',
        };
    }
    return { command: 'python3', args: [...PYTHON_MODULE_ARGS], source: 'python3 on PATH' };
}

/** The shape of the Python extension's API that we use (both its old and new spellings). */
interface PythonExtensionApi {
    environments?: {
        getActiveEnvironmentPath?(resource?: vscode.Uri): { path?: string } | undefined;
    };
    settings?: {
        getExecutionDetails?(resource?: vscode.Uri): { execCommand?: string[] } | undefined;
    };
}

/** Asks the Python extension (ms-python.python) for its selected interpreter. */
export async function interpreterFromPythonExtension(
    resource?: vscode.Uri,
): Promise<string | undefined> {
    const extension = vscode.extensions.getExtension<PythonExtensionApi>('ms-python.python');
    if (!extension) {
        return undefined;
    }
    try {
        const api = extension.isActive ? extension.exports : await extension.activate();
        const active = api?.environments?.getActiveEnvironmentPath?.(resource)?.path;
        if (active) {
            return active;
        }
        return api?.settings?.getExecutionDetails?.(resource)?.execCommand?.[0];
    } catch {
        // A broken Python extension must not keep completions from starting: use the fallback.
        return undefined;
    }
}

/**
 * Whether `command` names an executable file, directly or through PATH.
 *
 * Checked before launching so that a missing interpreter gives one message naming the fix
 * instead of the language client's generic connection errors.
 */
export function executableExists(command: string, searchPath = process.env.PATH ?? ''): boolean {
    const isExecutable = (candidate: string): boolean => {
        try {
            fs.accessSync(candidate, fs.constants.X_OK);
            return fs.statSync(candidate).isFile();
        } catch {
            return false;
        }
    };
    if (command.includes('/') || command.includes('\\')) {
        return isExecutable(command);
    }
    const extensions = process.platform === 'win32' ? ['', '.exe', '.cmd', '.bat'] : [''];
    return searchPath
        .split(path.delimiter)
        .filter((dir) => dir !== '')
        .some((dir) => extensions.some((ext) => isExecutable(path.join(dir, command + ext))));
}
