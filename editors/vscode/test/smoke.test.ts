/**
 * Smoke tests under plain Node: the compiled module graph loads, activation registers what
 * package.json promises, and the pure helpers behave. `vscode` is a stub (see vscodeStub.ts).
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';

import { declaredDefaults, installVscodeStub, recorded } from './vscodeStub';

installVscodeStub();

const srcDir = path.join(__dirname, '..', 'src');
const manifest = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8'));

test('every compiled module loads without crashing', () => {
    const modules = fs.readdirSync(srcDir).filter((name) => name.endsWith('.js'));
    assert.ok(modules.includes('extension.js'), `extension.js missing from ${srcDir}`);
    for (const name of modules) {
        assert.doesNotThrow(() => require(path.join(srcDir, name)), `require(${name})`);
    }
    const extension = require(path.join(srcDir, 'extension.js'));
    assert.equal(typeof extension.activate, 'function');
    assert.equal(typeof extension.deactivate, 'function');
});

test('package.json main points at the compiled extension', () => {
    const main = path.resolve(__dirname, '..', '..', manifest.main);
    assert.equal(main, path.join(srcDir, 'extension.js'));
});

test('every server setting is declared in package.json, and only client keys are not sent', () => {
    const { SERVER_SETTING_KEYS, RESTART_SETTING_KEYS, readServerSettings } = require(path.join(srcDir, 'settings.js'));
    const declared = Object.keys(declaredDefaults());
    for (const key of SERVER_SETTING_KEYS) {
        assert.ok(declared.includes(key), `docomplete.${key} not declared`);
    }
    const clientOnly = declared.filter((key) => !SERVER_SETTING_KEYS.includes(key));
    assert.deepEqual(clientOnly.sort(), [...RESTART_SETTING_KEYS, 'trace.server'].sort());
    for (const [key, spec] of Object.entries(manifest.contributes.configuration.properties)) {
        assert.ok((spec as { scope?: string }).scope, `${key} has no scope`);
    }

    const defaults = declaredDefaults();
    const sent = readServerSettings({ get: (key: string) => defaults[key] });
    assert.equal(sent.backend, 'embedded');
    assert.equal(sent.n, 4);
    assert.equal(sent.doctestFilter, true);
    assert.ok(!('modelPath' in sent), 'an empty modelPath means "server default" and is not sent');
    assert.ok(!('pythonPath' in sent) && !('serverCommand' in sent));
});

test('server command: serverCommand, then pythonPath, then Python extension, then python3', async () => {
    const { resolveServerCommand } = require(path.join(srcDir, 'serverCommand.js'));
    const settings = (values: Record<string, unknown>) => ({ get: (key: string) => values[key] });
    const noInterpreter = async () => undefined;
    const venvPython = async () => '/venv/bin/python';

    const explicit = await resolveServerCommand(
        settings({ serverCommand: ['docomplete', 'lsp', '-v'], pythonPath: '/x/python' }),
        venvPython,
    );
    assert.deepEqual([explicit.command, ...explicit.args], ['docomplete', 'lsp', '-v']);

    const fromSetting = await resolveServerCommand(settings({ serverCommand: [], pythonPath: '/x/python' }), venvPython);
    assert.deepEqual([fromSetting.command, ...fromSetting.args], ['/x/python', '-m', 'server.cli', 'lsp']);

    const fromExtension = await resolveServerCommand(settings({ serverCommand: [], pythonPath: '' }), venvPython);
    assert.equal(fromExtension.command, '/venv/bin/python');

    const fallback = await resolveServerCommand(settings({}), noInterpreter);
    assert.deepEqual([fallback.command, ...fallback.args], ['python3', '-m', 'server.cli', 'lsp']);
});

test('candidates result: ranked rows with verdicts and scores', () => {
    const { parseCandidatesResult, describeCandidate } = require(path.join(srcDir, 'protocol.js'));
    const range = { start: { line: 3, character: 4 }, end: { line: 3, character: 4 } };
    const parsed = parseCandidatesResult({
        candidates: [
            {
                insertText: 'total = 0\n    for x in xs:\n        total += x\n    return total',
                range,
                score: -0.4213,
                doctest: { passed: 2, total: 2, status: 'passed' },
                command: { title: 'accept', command: 'docomplete.accept', arguments: [{ requestId: 'r1', index: 0 }] },
            },
            { text: 'return 0', meanLogprob: -0.1 },
            { insertText: '' },
            'garbage',
        ],
    });
    assert.equal(parsed.length, 2);
    assert.deepEqual(parsed[0].range, range);
    assert.equal(parsed[1].insertText, 'return 0');
    assert.equal(parsed[1].score, -0.1);
    const row = describeCandidate(parsed[0], 1);
    assert.equal(row.label, '1. total = 0 (+3 lines)');
    assert.equal(row.description, 'doctests 2/2 · score -0.42');
    assert.equal(row.detail, 'for x in xs: ⏎ total += x ⏎ return total');
    assert.deepEqual(parseCandidatesResult([{ insertText: 'pass' }]).length, 1);
    // The server's real shape: no per-candidate command; accepting one reports its index.
    const fromServer = parseCandidatesResult({
        requestId: 'r7',
        candidates: [
            { rank: 1, insertText: 'return a + b', meanLogprob: -0.8, doctest: { passed: 2, total: 2, status: 'passed' } },
            { rank: 2, insertText: 'return a - b', meanLogprob: -0.1, doctest: { passed: 0, total: 2, status: 'failed' } },
        ],
    });
    assert.deepEqual(fromServer[1].command, {
        title: 'docomplete: accepted',
        command: 'docomplete.accept',
        arguments: [{ requestId: 'r7', index: 1 }],
    });
    assert.equal(describeCandidate(fromServer[1], 2).description, 'doctests 0/2 · score -0.10');
    assert.deepEqual(parseCandidatesResult(null), []);
});

test('picker rows name the verdict: skipped and unverifiable examples never read as 0/n', () => {
    const { parseCandidatesResult, describeCandidate, prefixed } = require(path.join(srcDir, 'protocol.js'));
    const rows = parseCandidatesResult({
        requestId: 'r9',
        candidates: [
            { rank: 1, insertText: 'return 1', meanLogprob: -0.2, verdict: 'passed', doctest: { passed: 3, total: 3, status: 'passed' } },
            { rank: 2, insertText: 'return len(self.items)', meanLogprob: -0.3, verdict: 'skipped', doctest: { passed: 0, total: 3, status: 'skipped' } },
            { rank: 3, insertText: 'return httpx.get(u)', meanLogprob: -0.4, verdict: 'unverifiable', doctest: { passed: 0, total: 1, status: 'unverifiable' } },
            { rank: 4, insertText: 'return 2', meanLogprob: -0.5, verdict: 'failed', doctest: { passed: 1, total: 3, status: 'failed' } },
        ],
    }).map((candidate: unknown, index: number) => describeCandidate(candidate, index + 1).description);
    assert.deepEqual(rows, [
        'doctests 3/3 · score -0.20',
        'doctests skipped · score -0.30',
        'doctests unverifiable · score -0.40',
        'doctests 1/3 failed · score -0.50',
    ]);
    assert.equal(prefixed('docomplete: the model backend is down'), 'docomplete: the model backend is down');
    assert.equal(prefixed('timed out'), 'docomplete: timed out');
});

test('a server that exits with code 0 is not logged as an error', () => {
    const { isCleanExit } = require(path.join(srcDir, 'session.js'));
    assert.equal(isCleanExit('Server process exited with code 0.'), true);
    assert.equal(isCleanExit('Server process exited with code 1.'), false);
    assert.equal(isCleanExit('Server process exited with signal SIGKILL.'), false);
});

test('inline trigger kinds are renumbered from VS Code to LSP', () => {
    const { asLspTriggerKind } = require(path.join(srcDir, 'session.js'));
    // VS Code: Invoke = 0, Automatic = 1. LSP 3.18: Invoked = 1, Automatic = 2.
    assert.equal(asLspTriggerKind({ triggerKind: 0 }).triggerKind, 1);
    assert.equal(asLspTriggerKind({ triggerKind: 1, selectedCompletionInfo: undefined }).triggerKind, 2);
});

test('status bar shows "thinking" only while a request is in flight', () => {
    const { StatusIndicator } = require(path.join(srcDir, 'statusBar.js'));
    const status = new StatusIndicator('docomplete.showLog');
    status.setState('ready');
    assert.ok(!status.text.includes('thinking'));
    const finishFirst = status.beginRequest();
    const finishSecond = status.beginRequest();
    assert.ok(status.text.includes('thinking'));
    finishFirst();
    finishFirst(); // finishing twice must not end the other request
    assert.ok(status.text.includes('thinking'));
    finishSecond();
    assert.ok(!status.text.includes('thinking'));
    status.dispose();
});

// vscode-languageclient 9 stops a client whose start failed with an unawaited promise that
// rejects; VS Code's extension host only logs such rejections, so the test collects them.
const libraryRejections: unknown[] = [];
process.on('unhandledRejection', (reason) => libraryRejections.push(reason));

test('activation registers the contributed commands and reports a server that will not start', async () => {
    recorded.settings = { pythonPath: '/nonexistent/venv/bin/python' };
    const extension = require(path.join(srcDir, 'extension.js'));
    const subscriptions: { dispose(): unknown }[] = [];
    await extension.activate({ subscriptions, extensionPath: path.join(__dirname, '..', '..') });

    for (const { command } of manifest.contributes.commands) {
        assert.ok(recorded.commands.has(command), `${command} is contributed but not registered`);
    }
    const errors = recorded.messages.filter((m) => m.level === 'error');
    assert.equal(errors.length, 1, JSON.stringify(recorded.messages));
    assert.match(errors[0].text, /\/nonexistent\/venv\/bin\/python.*was not found/);
    assert.match(errors[0].text, /docomplete\.pythonPath/);
    assert.ok(recorded.output.some((line) => line.includes('/nonexistent/venv/bin/python -m server.cli lsp (from setting docomplete.pythonPath)')), 'log names the command');
    const status = recorded.statusItems.at(-1);
    assert.ok(status && status.visible && status.text.includes('error'), status?.text);

    await extension.deactivate();
    subscriptions.forEach((item) => item.dispose());
    await new Promise((resolve) => setTimeout(resolve, 200));
    for (const reason of libraryRejections) {
        assert.match(String(reason), /can't be stopped|stream was destroyed|connection got disposed/);
    }
});

test('partial accept: the item\'s accept arguments plus the accepted length, in either shape', () => {
    const { partialAcceptParams } = require(path.join(srcDir, 'protocol.js'));
    const command = { title: '', command: 'docomplete.accept', arguments: [{ requestId: 'r00003', index: 1 }] };
    assert.deepEqual(partialAcceptParams(command, 7), { requestId: 'r00003', index: 1, acceptedLength: 7 });
    assert.deepEqual(partialAcceptParams(command, { kind: 0, acceptedLength: 4 }), {
        requestId: 'r00003',
        index: 1,
        acceptedLength: 4,
    });
    assert.deepEqual(partialAcceptParams(command, undefined), { requestId: 'r00003', index: 1 });
    assert.equal(partialAcceptParams({ title: '', command: 'other.command', arguments: [{}] }, 3), undefined);
    assert.equal(partialAcceptParams(undefined, 3), undefined);
});
