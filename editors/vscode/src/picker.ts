/** The "Show Ranked Candidates" command: every ranked candidate in a QuickPick, best first. */
import * as vscode from 'vscode';
import { ExecuteCommandRequest } from 'vscode-languageclient/node';

import {
    CANDIDATES_REQUEST,
    candidatesParams,
    describeCandidate,
    parseCandidatesResult,
    prefixed,
    RankedCandidate,
} from './protocol';
import { ServerSession } from './session';

interface CandidatePick extends vscode.QuickPickItem {
    candidate: RankedCandidate;
}

export async function showCandidatesPicker(session: ServerSession): Promise<void> {
    const editor = vscode.window.activeTextEditor;
    if (!editor || editor.document.languageId !== 'python') {
        void vscode.window.showInformationMessage(
            'docomplete: open a Python file and put the cursor in a function body first.',
        );
        return;
    }
    const client = session.client;
    if (!client) {
        void vscode.window.showWarningMessage(
            'docomplete: the language server is not running. Run "docomplete: Restart Server" ' +
                'and check "docomplete: Show Log".',
        );
        return;
    }
    const document = editor.document;
    const position = editor.selection.active;
    const version = document.version;
    const finished = session.status.beginRequest();
    let result: unknown;
    try {
        result = await vscode.window.withProgress(
            { location: vscode.ProgressLocation.Window, title: 'docomplete: ranking candidates', cancellable: true },
            (_progress, token) =>
                client.sendRequest(
                    CANDIDATES_REQUEST,
                    candidatesParams(document.uri.toString(), position),
                    token,
                ),
        );
    } catch (error) {
        const reason = error instanceof Error ? error.message : String(error);
        void vscode.window.showErrorMessage(prefixed(reason));
        return;
    } finally {
        finished();
    }
    const candidates = parseCandidatesResult(result);
    if (candidates.length === 0) {
        void vscode.window.showInformationMessage(
            'docomplete: no candidate here. Put the cursor in the body of a function, below its docstring.',
        );
        return;
    }
    const picks: CandidatePick[] = candidates.map((candidate, index) => ({
        ...describeCandidate(candidate, index + 1),
        candidate,
    }));
    const picked = await vscode.window.showQuickPick(picks, {
        title: 'docomplete: ranked candidates (doctests passed, then likelihood; failed ones are never ghost text)',
        matchOnDescription: true,
        matchOnDetail: true,
    });
    if (!picked) {
        return;
    }
    if (document.version !== version) {
        void vscode.window.showWarningMessage(
            'docomplete: the file changed while the picker was open; run the command again.',
        );
        return;
    }
    const chosen = picked.candidate;
    const range = chosen.range
        ? client.protocol2CodeConverter.asRange(chosen.range)
        : new vscode.Range(position, position);
    const applied = await editor.edit((edit) => edit.replace(range, chosen.insertText));
    if (applied && chosen.command) {
        await client.sendRequest(ExecuteCommandRequest.type, {
            command: chosen.command.command,
            arguments: chosen.command.arguments,
        });
    }
}
