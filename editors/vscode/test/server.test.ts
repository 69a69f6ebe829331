/**
 * The extension against the real `docomplete lsp`: activation starts the server, the inline
 * provider returns the doctest-passing body, the status bar says "thinking" meanwhile, accepting
 * and the candidates picker reach the server's telemetry.
 *
 * VS Code itself is the stub from vscodeStub.ts (a real one cannot be downloaded here); the
 * language client, the server and the scripted model backend are real. Run by
 * tests/e2e/test_vscode_extension.py, which sets:
 *   DOCOMPLETE_TEST_SERVER_COMMAND  JSON list, e.g. ["/repo/.venv/bin/docomplete", "lsp"]
 *   DOCOMPLETE_TEST_BACKEND         URL of the scripted OpenAI-compatible backend
 *   DOCOMPLETE_TEST_FILE            Python file to complete; DOCOMPLETE_TEST_CURSOR "line:character"
 *   DOCOMPLETE_TEST_EXPECTED        the body the server should offer first
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';

import { changeSettings, fakeDocument, installVscodeStub, Position, recorded, vscodeStub } from './vscodeStub';

const env = process.env;
const missing = ['DOCOMPLETE_TEST_SERVER_COMMAND', 'DOCOMPLETE_TEST_BACKEND', 'DOCOMPLETE_TEST_FILE'].filter(
    (name) => !env[name],
);

async function waitFor<T>(probe: () => T | undefined, what: string, timeoutMs = 20000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
        const value = probe();
        if (value) {
            return value;
        }
        if (Date.now() > deadline) {
            throw new Error(`timed out waiting for ${what}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 25));
    }
}

interface InlineItem {
    insertText: string;
    range?: { start: Position; end: Position };
    command?: { command: string; arguments?: unknown[] };
}

test(
    'inline completion, accept and the picker against the real server',
    { skip: missing.length > 0 ? `set ${missing.join(', ')}` : false, timeout: 90000 },
    async () => {
        installVscodeStub();
        const file = env.DOCOMPLETE_TEST_FILE as string;
        const [line, character] = (env.DOCOMPLETE_TEST_CURSOR ?? '0:0').split(':').map(Number);
        const expected = env.DOCOMPLETE_TEST_EXPECTED as string;
        const telemetryFile = path.join(path.dirname(file), 'telemetry.jsonl');
        const document = fakeDocument(`file://${file}`, fs.readFileSync(file, 'utf8'));
        vscodeStub.workspace.textDocuments = [document];
        recorded.settings = {
            serverCommand: JSON.parse(env.DOCOMPLETE_TEST_SERVER_COMMAND as string),
            backend: env.DOCOMPLETE_TEST_BACKEND,
            n: 4,
            telemetryFile,
        };

        const extension = require(path.join(__dirname, '..', 'src', 'extension.js'));
        const subscriptions: { dispose(): unknown }[] = [];
        await extension.activate({ subscriptions });
        const status = recorded.statusItems.at(-1)!;
        assert.match(status.text, /check/, `status after start: ${status.text}; ${JSON.stringify(recorded.messages)}`);
        assert.deepEqual(recorded.messages, [], 'no error or warning popups on a healthy start');

        // VS Code asks the provider the language client registered for Python documents.
        const providers = recorded.providers.get('InlineCompletionItemProvider') ?? [];
        assert.equal(providers.length, 1, 'inline completion provider registered (proposed feature)');
        const provider = providers[0] as {
            provideInlineCompletionItems(...args: unknown[]): Promise<{ items: InlineItem[] } | InlineItem[]>;
        };
        const token = { isCancellationRequested: false, onCancellationRequested: () => ({ dispose() {} }) };
        const pending = provider.provideInlineCompletionItems(
            document,
            new Position(line, character),
            { triggerKind: 0 /* vscode.InlineCompletionTriggerKind.Invoke */, selectedCompletionInfo: undefined },
            token,
        );
        assert.match(status.text, /thinking/, 'status bar while the request runs');
        const result = await pending;
        assert.doesNotMatch(status.text, /thinking/, 'status bar after the answer');
        const items = Array.isArray(result) ? result : result.items;
        assert.ok(items.length >= 1, 'at least one inline item');
        assert.equal(items[0].insertText, expected);
        assert.deepEqual(items[0].range?.start, new Position(line, character));

        // Accepting runs the item's command; the client forwards it to the server.
        const accept = items[0].command!;
        assert.equal(accept.command, 'docomplete.accept');
        const forward = await waitFor(() => recorded.commands.get(accept.command), 'docomplete.accept registration');
        await forward(...(accept.arguments ?? []));

        // A partial accept (next word): VS Code tells the provider, the extension tells the server.
        const partial = (provider as { handleDidPartiallyAcceptCompletionItem?: (item: unknown, info: unknown) => void })
            .handleDidPartiallyAcceptCompletionItem;
        assert.equal(typeof partial, 'function', 'partial-accept hook on the inline provider');
        partial!(items[0], { kind: 0, acceptedLength: 6 });

        // The picker: every ranked candidate, the first one inserted at the cursor.
        const edits: { text: string; start: Position }[] = [];
        vscodeStub.window.activeTextEditor = {
            document,
            selection: { active: new Position(line, character) },
            edit: async (build: (builder: { replace(range: { start: Position }, text: string): void }) => void) => {
                build({ replace: (range, text) => edits.push({ text, start: range.start }) });
                return true;
            },
        };
        recorded.pickFrom = (picks) => picks[0];
        await recorded.commands.get('docomplete.showCandidates')!();
        const rows = recorded.quickPicks[0] as { label: string; description: string }[];
        assert.ok(rows.length >= 2, JSON.stringify(rows));
        assert.match(rows[0].description, /^doctests 2\/2 · score /);
        assert.match(rows[1].description, /^doctests 0\/2/);
        assert.deepEqual(edits, [{ text: expected, start: new Position(line, character) }]);

        // The server logged shown (from the middleware) and two accepts (inline, picker).
        const events = await waitFor(() => {
            if (!fs.existsSync(telemetryFile)) {
                return undefined;
            }
            const parsed = fs
                .readFileSync(telemetryFile, 'utf8')
                .split('\n')
                .filter((row) => row.trim() !== '')
                .map((row) => JSON.parse(row) as { event: string; index?: number });
            return parsed.filter((e) => e.event === 'accepted').length >= 2 ? parsed : undefined;
        }, 'accepted events in the telemetry file');
        const kinds = events.map((e) => e.event);
        assert.ok(kinds.includes('shown'), kinds.join(','));
        const partials = await waitFor(() => {
            const rows = fs.readFileSync(telemetryFile, 'utf8').split('\n').filter((row) => row.trim() !== '');
            const found = rows.map((row) => JSON.parse(row)).filter((e) => e.event === 'partial');
            return found.length > 0 ? found : undefined;
        }, 'a partial event');
        assert.deepEqual(
            partials.map((e: { acceptedChars?: number; index?: number }) => [e.acceptedChars, e.index]),
            [[6, 0]],
        );
        assert.deepEqual(
            events.filter((e) => e.event === 'accepted').map((e) => e.index),
            [0, 0],
        );

        // A settings edit reaches the running server (didChangeConfiguration): the next request
        // samples at the new temperature, so it is not served from the cache.
        changeSettings({ temperature: 0.3 });
        const afterChange = await provider.provideInlineCompletionItems(
            document,
            new Position(line, character),
            { triggerKind: 1, selectedCompletionInfo: undefined },
            token,
        );
        const changedItems = Array.isArray(afterChange) ? afterChange : afterChange.items;
        assert.equal(changedItems[0].insertText, expected);
        const temperatures = await waitFor(() => {
            const rows = fs.readFileSync(telemetryFile, 'utf8').split('\n').filter((row) => row.trim() !== '');
            const completions = rows.map((row) => JSON.parse(row)).filter((e) => e.event === 'completion');
            const seen = completions.map((e: { temperature?: number }) => e.temperature);
            return seen.includes(0.3) ? seen : undefined;
        }, 'a completion sampled at the new temperature');
        assert.equal(temperatures[0], 0.8);
        // Each non-empty inline answer was reported as shown.
        await waitFor(() => {
            const rows = fs.readFileSync(telemetryFile, 'utf8').split('\n').filter((row) => row.trim() !== '');
            return rows.filter((row) => JSON.parse(row).event === 'shown').length === 2;
        }, 'two shown events');

        // Nothing along the way made the server complain (settings, params) or the client fail.
        assert.deepEqual(recorded.messages, []);

        await extension.deactivate();
        subscriptions.forEach((item) => item.dispose());
    },
);
