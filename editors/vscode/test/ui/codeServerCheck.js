/**
 * Optional check in a real VS Code (code-server) driven by headless Chromium: the packaged
 * extension shows the doctest-passing body as ghost text, Tab inserts it, and the candidates
 * picker lists the ranked candidates. Not part of `npm test` (it needs code-server, Node 24 and
 * Chromium; see docs/EDITORS.md, "Checking in a real VS Code").
 *
 *   CODE_SERVER=/path/to/node_modules/.bin/code-server CHROMIUM=/usr/bin/chromium \
 *   PUPPETEER_CORE=/path/to/node_modules/puppeteer-core VSIX=docomplete-0.1.0.vsix \
 *   DOCOMPLETE=/repo/.venv/bin/docomplete PYTHON=/repo/.venv/bin/python \
 *   node test/ui/codeServerCheck.js
 */
'use strict';

const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const puppeteer = require(process.env.PUPPETEER_CORE || 'puppeteer-core');

const REPO = path.resolve(__dirname, '..', '..', '..', '..');
const SOURCE = [
    'def add(a, b):',
    '    """Return the sum of a and b.',
    '',
    '    >>> add(2, 3)',
    '    5',
    '    >>> add(-1, 1)',
    '    0',
    '    """',
    '    ',
    '',
].join('\n');

function need(name) {
    const value = process.env[name];
    if (!value) {
        throw new Error(`set ${name} (see the header of ${path.basename(__filename)})`);
    }
    return value;
}

function freePort() {
    return new Promise((resolve, reject) => {
        const server = net.createServer();
        server.listen(0, '127.0.0.1', () => {
            const { port } = server.address();
            server.close(() => resolve(port));
        });
        server.on('error', reject);
    });
}

async function waitFor(probe, what, timeoutMs = 60000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
        const value = await probe();
        if (value) {
            return value;
        }
        if (Date.now() > deadline) {
            throw new Error(`timed out waiting for ${what}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 250));
    }
}

async function startScriptedBackend(python, work) {
    const script = path.join(work, 'script.json');
    fs.writeFileSync(
        script,
        JSON.stringify({ replies: [{ texts: ['    return a - b\n', '    return a + b\n'], logprobs: [-0.1, -0.8] }] }),
    );
    const child = spawn(python, ['-m', 'tests.fixtures.scripted_backend', '--script', script], {
        cwd: REPO,
        stdio: ['ignore', 'pipe', 'inherit'],
    });
    const url = await new Promise((resolve, reject) => {
        child.stdout.once('data', (chunk) => resolve(String(chunk).trim().split('\n')[0]));
        child.once('exit', (code) => reject(new Error(`scripted backend exited with ${code}`)));
    });
    return { child, url };
}

async function main() {
    const codeServer = need('CODE_SERVER');
    const chromium = need('CHROMIUM');
    const vsix = path.resolve(need('VSIX'));
    const docomplete = need('DOCOMPLETE');
    const python = need('PYTHON');

    const work = fs.mkdtempSync(path.join(os.tmpdir(), 'docomplete-ui-'));
    const userData = path.join(work, 'user-data');
    const extensions = path.join(work, 'extensions');
    const workspace = path.join(work, 'workspace');
    fs.mkdirSync(path.join(workspace, '.vscode'), { recursive: true });
    fs.writeFileSync(path.join(workspace, 'mathy.py'), SOURCE);

    const backend = await startScriptedBackend(python, work);
    const children = [backend.child];
    let browser;
    let page;
    try {
        fs.writeFileSync(
            path.join(workspace, '.vscode', 'settings.json'),
            JSON.stringify(
                {
                    'docomplete.serverCommand': [docomplete, 'lsp', '--log-file', path.join(work, 'lsp.log')],
                    'docomplete.backend': backend.url,
                    'editor.inlineSuggest.enabled': true,
                    'workbench.startupEditor': 'none',
                    'security.workspace.trust.enabled': false,
                    'docomplete.trace.server': 'messages', // the LSP traffic lands in the output log
                },
                null,
                2,
            ),
        );
        // A config file of our own, so code-server does not write one into the home directory.
        const config = path.join(work, 'code-server.yaml');
        fs.writeFileSync(config, 'auth: none\n');
        execFileSync(codeServer, ['--config', config, '--extensions-dir', extensions, '--user-data-dir', userData, '--install-extension', vsix], {
            stdio: 'inherit',
        });
        const port = await freePort();
        const server = spawn(
            codeServer,
            [
                '--config', config,
                '--auth', 'none',
                '--bind-addr', `127.0.0.1:${port}`,
                '--user-data-dir', userData,
                '--extensions-dir', extensions,
                '--disable-telemetry',
                '--disable-workspace-trust',
                workspace,
            ],
            { stdio: ['ignore', 'inherit', 'inherit'] },
        );
        children.push(server);
        const base = `http://127.0.0.1:${port}`;
        await waitFor(() => fetch(`${base}/healthz`).then((r) => r.ok, () => false), 'code-server');

        browser = await puppeteer.launch({
            executablePath: chromium,
            headless: true,
            args: ['--no-sandbox', '--disable-gpu', '--window-size=1400,900'],
            defaultViewport: { width: 1400, height: 900 },
        });
        page = await browser.newPage();
        await page.goto(`${base}/?folder=${encodeURIComponent(workspace)}`, { waitUntil: 'domcontentloaded' });
        await page.waitForSelector('.monaco-workbench', { timeout: 120000 });
        await new Promise((resolve) => setTimeout(resolve, 3000));

        // Open the file from the Explorer, then go to line 9, column 5 (the empty body line).
        const fileRow = await waitFor(
            async () => {
                const rows = await page.$$('.explorer-folders-view .monaco-list-row');
                for (const row of rows) {
                    const label = await row.evaluate((e) => e.textContent || '');
                    if (label.includes('mathy.py')) {
                        return row;
                    }
                }
                return undefined;
            },
            'mathy.py in the Explorer',
        );
        await fileRow.click({ count: 2 });
        await page.waitForSelector('.monaco-editor .view-lines', { timeout: 60000 });
        await new Promise((resolve) => setTimeout(resolve, 1500));
        await page.keyboard.down('Control');
        await page.keyboard.press('KeyG');
        await page.keyboard.up('Control');
        await page.waitForSelector('.quick-input-widget input', { visible: true });
        await page.keyboard.type('9:5');
        await waitFor(
            () => page.evaluate(() => (document.querySelector('.quick-input-list')?.textContent || '').includes('line 9')),
            'the go-to-line prompt',
        );
        await page.keyboard.press('Enter');
        await waitFor(
            () =>
                page.evaluate(() =>
                    [...document.querySelectorAll('.statusbar-item')].some((e) => (e.textContent || '').includes('Ln 9, Col 5')),
                ),
            'the cursor on line 9, column 5',
        );

        // The extension activates on Python files; wait for its status bar item to say ready.
        const statusText = () =>
            page.evaluate(() =>
                [...document.querySelectorAll('.statusbar-item')].map((e) => e.textContent || '').join(' | '),
            );
        await waitFor(async () => (await statusText()).includes('docomplete'), 'the docomplete status bar item', 120000);
        const checks = { status: await statusText() };

        // Typing asks for an inline suggestion (a space and its deletion leave the text as it was).
        const ghost = await waitFor(
            async () => {
                await page.keyboard.press('Space');
                await page.keyboard.press('Backspace');
                await new Promise((resolve) => setTimeout(resolve, 1500));
                return page.evaluate(() => {
                    const parts = [...document.querySelectorAll('.ghost-text-decoration, .ghost-text')];
                    // Monaco draws spaces as no-break spaces.
                    return parts.map((e) => e.textContent).join('').replace(/\u00a0/g, ' ');
                });
            },
            'ghost text',
            90000,
        );
        checks.ghost = ghost;
        await page.keyboard.press('Tab');
        await new Promise((resolve) => setTimeout(resolve, 1000));
        checks.lines = await page.evaluate(() =>
            [...document.querySelectorAll('.monaco-editor .view-line')].map((e) => (e.textContent || '').replace(/\u00a0/g, ' ')),
        );

        // Undo the insertion, then the candidates picker (Ctrl+Alt+Enter) on the empty body.
        await page.keyboard.down('Control');
        await page.keyboard.press('KeyZ');
        await page.keyboard.up('Control');
        await waitFor(
            () =>
                page.evaluate(() =>
                    [...document.querySelectorAll('.statusbar-item')].some((e) => (e.textContent || '').includes('Ln 9, Col 5')),
                ),
            'the undo',
        );
        await page.keyboard.down('Control');
        await page.keyboard.down('Alt');
        await page.keyboard.press('Enter');
        await page.keyboard.up('Alt');
        await page.keyboard.up('Control');
        checks.picker = await waitFor(
            () =>
                page.evaluate(() => {
                    // The widget is reused: wait for our rows, not the go-to-line prompt's.
                    const rows = [...document.querySelectorAll('.quick-input-list .monaco-list-row')];
                    const texts = rows.map((row) => row.textContent || '');
                    return texts.some((text) => text.includes('doctests')) ? texts : undefined;
                }),
            'the candidates picker',
            60000,
        );
        await page.keyboard.press('Enter');
        await new Promise((resolve) => setTimeout(resolve, 1000));
        checks.linesAfterPick = await page.evaluate(() =>
            [...document.querySelectorAll('.monaco-editor .view-line')].map((e) => (e.textContent || '').replace(/\u00a0/g, ' ')),
        );
        await page.screenshot({ path: path.join(work, 'final.png') });

        // The server wrote telemetry.jsonl next to its --log-file: VS Code showed and accepted items.
        const telemetry = path.join(work, 'telemetry.jsonl');
        checks.telemetry = fs.existsSync(telemetry)
            ? fs.readFileSync(telemetry, 'utf8').split('\n').filter(Boolean).map((row) => JSON.parse(row).event)
            : [];
        console.log(JSON.stringify(checks, null, 2));
        const ok =
            checks.ghost.includes('return a + b') &&
            checks.lines.some((line) => line.trim() === 'return a + b') &&
            checks.picker.some((row) => row.includes('doctests 2/2')) &&
            checks.linesAfterPick.some((line) => line.trim() === 'return a + b') &&
            checks.telemetry.includes('shown') &&
            checks.telemetry.filter((event) => event === 'accepted').length === 2;
        console.log(ok ? 'UI CHECK PASSED' : 'UI CHECK FAILED');
        console.log(`artifacts (screenshot, lsp.log): ${work}`);
        process.exitCode = ok ? 0 : 1;
    } catch (error) {
        if (page) {
            await page.screenshot({ path: path.join(work, 'failure.png') }).catch(() => undefined);
            console.error(`screenshot: ${path.join(work, 'failure.png')}`);
        }
        throw error;
    } finally {
        if (browser) {
            await browser.close();
        }
        for (const child of children.reverse()) {
            child.kill();
        }
    }
}

main().catch((error) => {
    console.error(error);
    process.exitCode = 1;
});
