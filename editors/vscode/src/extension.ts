/**
 * Extension lifecycle only: create the session, register commands, stop on deactivate.
 */
import * as vscode from 'vscode';

import { showCandidatesPicker } from './picker';
import { ServerSession } from './session';
import { StatusIndicator } from './statusBar';

export const COMMANDS = {
    showCandidates: 'docomplete.showCandidates',
    restartServer: 'docomplete.restartServer',
    showLog: 'docomplete.showLog',
} as const;

let session: ServerSession | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
    const output = vscode.window.createOutputChannel('docomplete');
    const status = new StatusIndicator(COMMANDS.showLog);
    const current = new ServerSession(output, status);
    session = current;
    context.subscriptions.push(
        output,
        status,
        current,
        vscode.commands.registerCommand(COMMANDS.showCandidates, () => showCandidatesPicker(current)),
        vscode.commands.registerCommand(COMMANDS.restartServer, () => current.restart()),
        vscode.commands.registerCommand(COMMANDS.showLog, () => output.show(true)),
        vscode.workspace.onDidChangeConfiguration((event) => current.onConfigurationChanged(event)),
    );
    await current.start();
}

export async function deactivate(): Promise<void> {
    await session?.stop();
    session = undefined;
}
