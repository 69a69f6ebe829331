/**
 * One language-server session: starts `docomplete lsp`, keeps its settings in sync, restarts it.
 */
import * as vscode from 'vscode';
import {
    CloseAction,
    CloseHandlerResult,
    DidChangeConfigurationNotification,
    ErrorAction,
    ErrorHandler,
    ErrorHandlerResult,
    LanguageClient,
    LanguageClientOptions,
    Middleware,
    RevealOutputChannelOn,
    ServerOptions,
    State,
} from 'vscode-languageclient/node';

import { reportPartialAccepts } from './partialAccept';
import { SHOWN_NOTIFICATION, shownParams } from './protocol';
import {
    executableExists,
    interpreterFromPythonExtension,
    resolveServerCommand,
    ServerCommand,
} from './serverCommand';
import { changeNeedsRestart, currentServerSettings, readServerSettings, SECTION } from './settings';
import { StatusIndicator } from './statusBar';

export const PYTHON_DOCUMENTS = [
    { scheme: 'file', language: 'python' },
    { scheme: 'untitled', language: 'python' },
];

/**
 * vscode-languageclient 9.0.1 copies VS Code's trigger kind (Invoke = 0, Automatic = 1) into the
 * request unchanged, but LSP 3.18 numbers them Invoked = 1, Automatic = 2; a server that checks
 * the enum rejects 0. Shift it here (the client version is pinned in package.json).
 */
export function asLspTriggerKind<T extends { triggerKind: number }>(context: T): T {
    return { ...context, triggerKind: context.triggerKind + 1 };
}

/**
 * The language client, except that a server that exits with code 0 (a normal shutdown) is
 * logged as information: vscode-languageclient writes "Server process exited with code 0." as
 * an error.
 */
export class DocompleteLanguageClient extends LanguageClient {
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    override error(message: string, data?: any, showNotification?: boolean | 'force'): void {
        if (isCleanExit(message)) {
            this.info(message, data, false);
            return;
        }
        super.error(message, data, showNotification);
    }
}

/** Whether a client log line only says that the server process ended normally. */
export function isCleanExit(message: string): boolean {
    return /^Server process exited with code 0\.?$/.test(message.trim());
}

const MAX_RESTARTS = 4;
const MAX_RESTARTS_WINDOW_MS = 3 * 60 * 1000;

export class ServerSession implements vscode.Disposable {
    private languageClient: LanguageClient | undefined;
    /** Whether the current client ever finished initializing (a crash before that is not retried). */
    private reachedRunning = false;

    constructor(
        private readonly output: vscode.OutputChannel,
        readonly status: StatusIndicator,
    ) {}

    /** The running client, or undefined while the server is stopped or starting. */
    get client(): LanguageClient | undefined {
        return this.languageClient?.state === State.Running ? this.languageClient : undefined;
    }

    async start(): Promise<void> {
        this.status.setState('starting');
        const config = vscode.workspace.getConfiguration(SECTION);
        const resource = vscode.window.activeTextEditor?.document.uri;
        const serverCommand = await resolveServerCommand(config, interpreterFromPythonExtension, resource);
        this.output.appendLine(
            `starting: ${[serverCommand.command, ...serverCommand.args].join(' ')} (from ${serverCommand.source})`,
        );
        if (!executableExists(serverCommand.command)) {
            this.status.setState('failed');
            this.output.appendLine(`not found: ${serverCommand.command}`);
            void vscode.window.showErrorMessage(
                `docomplete: cannot start the language server: "${serverCommand.command}" (from ` +
                    `${serverCommand.source}) was not found. Set "docomplete.pythonPath" to a Python ` +
                    `that has docomplete installed, or "docomplete.serverCommand" (e.g. ["docomplete", "lsp"]).`,
            );
            return;
        }
        const client = this.createClient(serverCommand);
        this.languageClient = client;
        this.reachedRunning = false;
        client.onDidChangeState((event) => {
            if (event.newState === State.Running) {
                this.reachedRunning = true;
                this.status.setState('ready');
            } else if (event.newState === State.Stopped) {
                this.status.setState('stopped');
            }
        });
        try {
            await client.start();
            // vscode-languageclient 9 resolves start() when the server exits during initialize.
            if (client.state !== State.Running) {
                throw new Error('the server exited during startup');
            }
            reportPartialAccepts(client, (line) => this.output.appendLine(line));
        } catch (error) {
            this.status.setState('failed');
            const reason = error instanceof Error ? error.message : String(error);
            this.output.appendLine(`the server did not start: ${reason}`);
            void vscode.window.showErrorMessage(
                `docomplete: the language server did not start (${reason}; see "docomplete: Show Log"). ` +
                    `Install docomplete into the interpreter (\`pip install -e .\` in the docomplete checkout) or set ` +
                    `"docomplete.serverCommand", then run "docomplete: Restart Server".`,
            );
        }
    }

    async stop(): Promise<void> {
        const client = this.languageClient;
        this.languageClient = undefined;
        // Only a running client can be stopped; a failed start has already torn itself down.
        if (client && client.state === State.Running) {
            try {
                await client.stop();
            } catch (error) {
                this.output.appendLine(`stopping the server: ${String(error)}`);
            }
        }
        this.status.setState('stopped');
    }

    async restart(): Promise<void> {
        await this.stop();
        await this.start();
    }

    /** Pushes changed settings to the server, or restarts it when the launch command changed. */
    async onConfigurationChanged(event: vscode.ConfigurationChangeEvent): Promise<void> {
        if (!event.affectsConfiguration(SECTION)) {
            return;
        }
        if (changeNeedsRestart(event)) {
            await this.restart();
            return;
        }
        const client = this.client;
        if (client) {
            try {
                await client.sendNotification(DidChangeConfigurationNotification.type, {
                    settings: { [SECTION]: currentServerSettings() },
                });
            } catch (error) {
                // The server is going away; the next start sends the settings as initializationOptions.
                this.output.appendLine(`settings not sent: ${String(error)}`);
            }
        }
    }

    private createClient(serverCommand: ServerCommand): LanguageClient {
        // No `transport` here: with TransportKind.stdio the client appends `--stdio` to the
        // command line, which `docomplete lsp` does not take (stdio is its default anyway).
        const serverOptions: ServerOptions = {
            command: serverCommand.command,
            args: serverCommand.args,
        };
        const clientOptions: LanguageClientOptions = {
            documentSelector: PYTHON_DOCUMENTS,
            outputChannel: this.output,
            // The client's own error popups would repeat ours several times over; they stay in
            // the log, and start() failures get one message naming the fix.
            revealOutputChannelOn: RevealOutputChannelOn.Never,
            initializationOptions: currentServerSettings(),
            errorHandler: this.errorHandler(),
            // A failed initialize is reported once, by start(); do not retry it in a loop.
            initializationFailedHandler: (error) => {
                this.output.appendLine(`initialize failed: ${error instanceof Error ? error.message : String(error)}`);
                return false;
            },
            middleware: this.middleware(() => client),
        };
        const client = new DocompleteLanguageClient(SECTION, 'docomplete', serverOptions, clientOptions);
        // Inline completion is a "proposed" feature in vscode-languageclient 9 (LSP 3.18).
        client.registerProposedFeatures();
        return client;
    }

    /**
     * Restarts a crashed server a few times, then gives up with one message naming the fix.
     * Transport errors are logged, not shown: the close that follows them is what the user sees.
     */
    private errorHandler(): ErrorHandler {
        const recentCrashes: number[] = [];
        return {
            error: (error, _message, count): ErrorHandlerResult => {
                this.output.appendLine(`connection error: ${error.message}`);
                return { action: (count ?? 1) <= 3 ? ErrorAction.Continue : ErrorAction.Shutdown, handled: true };
            },
            closed: (): CloseHandlerResult => {
                if (!this.reachedRunning) {
                    // It never started: start() reports that once; restarting would only repeat it.
                    return { action: CloseAction.DoNotRestart, handled: true };
                }
                const now = Date.now();
                recentCrashes.push(now);
                while (recentCrashes.length > 0 && now - recentCrashes[0] > MAX_RESTARTS_WINDOW_MS) {
                    recentCrashes.shift();
                }
                if (recentCrashes.length <= MAX_RESTARTS) {
                    this.output.appendLine('the server exited; restarting it');
                    return { action: CloseAction.Restart, handled: true };
                }
                this.status.setState('failed');
                return {
                    action: CloseAction.DoNotRestart,
                    message:
                        `docomplete: the language server exited ${recentCrashes.length} times in a few ` +
                        `minutes and was not restarted. See "docomplete: Show Log", fix the cause, then run ` +
                        `"docomplete: Restart Server".`,
                };
            },
        };
    }

    private middleware(getClient: () => LanguageClient): Middleware {
        return {
            provideInlineCompletionItems: async (document, position, context, token, next) => {
                const finished = this.status.beginRequest();
                try {
                    const result = await next(document, position, asLspTriggerKind(context), token);
                    const items = Array.isArray(result) ? result : result?.items;
                    const first = items?.[0];
                    if (first && !token.isCancellationRequested) {
                        // VS Code's stable API has no "item was displayed" hook; a non-empty,
                        // non-cancelled answer is what it renders as ghost text.
                        getClient()
                            .sendNotification(SHOWN_NOTIFICATION, shownParams(first.command))
                            .catch((error: unknown) => this.output.appendLine(`docomplete/shown not sent: ${String(error)}`));
                    }
                    return result;
                } finally {
                    finished();
                }
            },
            workspace: {
                // Answer workspace/configuration with the server's keys only (no pythonPath etc.).
                configuration: async (params, token, next) => {
                    const answers = await next(params, token);
                    if (!Array.isArray(answers)) {
                        return answers;
                    }
                    return params.items.map((item, index) => {
                        if (item.section !== SECTION) {
                            return answers[index];
                        }
                        const scope = item.scopeUri ? vscode.Uri.parse(item.scopeUri) : undefined;
                        return readServerSettings(vscode.workspace.getConfiguration(SECTION, scope));
                    });
                },
            },
        };
    }

    dispose(): void {
        void this.stop();
    }
}
