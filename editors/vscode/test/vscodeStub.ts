/**
 * A stand-in for the `vscode` module so the extension's module graph can be loaded and its
 * activation run under plain Node (the real VS Code cannot be downloaded in CI).
 *
 * It implements what activation touches (configuration, commands, status bar, output channel,
 * messages) and records it; anything else resolves to an inert object.
 */
import Module = require('node:module');
import * as path from 'node:path';

type Listener = (...args: unknown[]) => unknown;

export interface Recorded {
    commands: Map<string, Listener>;
    /** Providers registered with vscode.languages.registerXxxProvider, by kind. */
    providers: Map<string, unknown[]>;
    /** What showQuickPick does with its items (default: pick none). */
    pickFrom: (items: unknown[]) => unknown;
    quickPicks: unknown[][];
    statusItems: { text: string; tooltip?: string; command?: string; visible: boolean }[];
    messages: { level: string; text: string }[];
    output: string[];
    settings: Record<string, unknown>;
}

export const recorded: Recorded = {
    commands: new Map(),
    providers: new Map(),
    pickFrom: () => undefined,
    quickPicks: [],
    statusItems: [],
    messages: [],
    output: [],
    settings: {},
};

/** Reads the defaults that package.json declares for the `docomplete.*` settings. */
export function declaredDefaults(): Record<string, unknown> {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const manifest = require(path.join(__dirname, '..', '..', 'package.json'));
    const properties = manifest.contributes.configuration.properties as Record<string, { default: unknown }>;
    const defaults: Record<string, unknown> = {};
    for (const [key, spec] of Object.entries(properties)) {
        defaults[key.replace(/^docomplete\./, '')] = spec.default;
    }
    return defaults;
}

/** An object that accepts any property access, call or `new` without failing. */
function inert(name: string): unknown {
    const target = function () {} as unknown as Record<string | symbol, unknown>;
    return new Proxy(target, {
        get(_t, property) {
            if (property === 'then') {
                return undefined; // not a promise
            }
            if (property === Symbol.toPrimitive) {
                return () => name;
            }
            if (property === 'dispose') {
                return () => undefined;
            }
            return inert(`${name}.${String(property)}`);
        },
        apply() {
            return inert(`${name}()`);
        },
        construct() {
            return inert(`new ${name}`) as object;
        },
    });
}

class Disposable {
    constructor(private readonly onDispose: () => void = () => undefined) {}
    static from(...items: { dispose(): unknown }[]): Disposable {
        return new Disposable(() => items.forEach((item) => item.dispose()));
    }
    dispose(): void {
        this.onDispose();
    }
}

class EventEmitter<T> {
    private listeners: ((value: T) => void)[] = [];
    event = (listener: (value: T) => void): Disposable => {
        this.listeners.push(listener);
        return new Disposable(() => {
            this.listeners = this.listeners.filter((l) => l !== listener);
        });
    };
    fire(value: T): void {
        this.listeners.forEach((listener) => listener(value));
    }
    dispose(): void {
        this.listeners = [];
    }
}

export class Position {
    constructor(
        readonly line: number,
        readonly character: number,
    ) {}
}

export class Range {
    readonly start: Position;
    readonly end: Position;
    // new Range(start, end) or new Range(startLine, startCharacter, endLine, endCharacter)
    constructor(a: Position | number, b: Position | number, c?: number, d?: number) {
        if (typeof a === 'number' && typeof b === 'number') {
            this.start = new Position(a, b);
            this.end = new Position(c ?? a, d ?? b);
        } else {
            this.start = a as Position;
            this.end = b as Position;
        }
    }
}

class InlineCompletionItem {
    filterText?: string;
    constructor(
        readonly insertText: string | { value: string },
        readonly range?: Range,
        readonly command?: { title: string; command: string; arguments?: unknown[] },
    ) {}
}

class InlineCompletionList {
    constructor(readonly items: InlineCompletionItem[]) {}
}

class SnippetString {
    constructor(readonly value: string) {}
}

/** A minimal text document: what the language client reads to open and sync it. */
export function fakeDocument(uri: string, text: string, languageId = 'python') {
    return {
        uri: { toString: () => uri, scheme: uri.split(':')[0], fsPath: uri.replace(/^file:\/\//, '') },
        languageId,
        version: 1,
        isClosed: false,
        isUntitled: false,
        lineCount: text.split('\n').length,
        getText: () => text,
        fileName: uri.replace(/^file:\/\//, ''),
    };
}

function matchesSelector(selector: unknown, document: { languageId: string; uri: { scheme: string } }): number {
    const filters = Array.isArray(selector) ? selector : [selector];
    return filters.some((filter) =>
        typeof filter === 'string'
            ? filter === document.languageId
            : (!filter.language || filter.language === document.languageId) &&
              (!filter.scheme || filter.scheme === document.uri.scheme),
    )
        ? 10
        : 0;
}

/** Base for the many classes vscode-languageclient extends at load time. */
class AnyVscodeClass {
    constructor(..._args: unknown[]) {}
}

const noEvent = (): Disposable => new Disposable();

const configurationChanges = new EventEmitter<{ affectsConfiguration(section: string): boolean }>();

/** Changes `docomplete.*` settings and tells the listeners, as VS Code does after a settings edit. */
export function changeSettings(changes: Record<string, unknown>): void {
    Object.assign(recorded.settings, changes);
    const keys = Object.keys(changes).map((key) => `docomplete.${key}`);
    configurationChanges.fire({
        affectsConfiguration: (section: string) =>
            keys.some((key) => key === section || key.startsWith(`${section}.`)),
    });
}

const stub: Record<string, unknown> = {
    Disposable,
    EventEmitter,
    Position,
    Range,
    InlineCompletionItem,
    InlineCompletionList,
    SnippetString,
    InlineCompletionTriggerKind: { Invoke: 0, Automatic: 1 },
    Uri: {
        parse: (value: string) => ({ toString: () => value, fsPath: value }),
        file: (value: string) => ({ toString: () => `file://${value}`, fsPath: value }),
    },
    StatusBarAlignment: { Left: 1, Right: 2 },
    ProgressLocation: { SourceControl: 1, Window: 10, Notification: 15 },
    ConfigurationTarget: { Global: 1, Workspace: 2, WorkspaceFolder: 3 },
    version: '1.82.0',
    env: { language: 'en', appName: 'stub', machineId: 'stub', sessionId: 'stub' },
    commands: {
        registerCommand(id: string, callback: Listener) {
            if (recorded.commands.has(id)) {
                throw new Error(`command '${id}' already exists`);
            }
            recorded.commands.set(id, callback);
            return new Disposable(() => recorded.commands.delete(id));
        },
        executeCommand: async (id: string, ...args: unknown[]) => recorded.commands.get(id)?.(...args),
        getCommands: async () => [...recorded.commands.keys()],
    },
    window: {
        createOutputChannel(name: string) {
            return {
                name,
                append: (text: string) => recorded.output.push(text),
                appendLine: (text: string) => recorded.output.push(text),
                replace: () => undefined,
                clear: () => undefined,
                show: () => undefined,
                hide: () => undefined,
                dispose: () => undefined,
            };
        },
        createStatusBarItem() {
            const item = {
                text: '',
                tooltip: undefined as string | undefined,
                command: undefined as string | undefined,
                visible: false,
                show() {
                    item.visible = true;
                },
                hide() {
                    item.visible = false;
                },
                dispose() {
                    item.visible = false;
                },
            };
            recorded.statusItems.push(item);
            return item;
        },
        showErrorMessage: async (text: string) => void recorded.messages.push({ level: 'error', text }),
        showWarningMessage: async (text: string) => void recorded.messages.push({ level: 'warning', text }),
        showInformationMessage: async (text: string) => void recorded.messages.push({ level: 'info', text }),
        activeTextEditor: undefined as unknown,
        showQuickPick: async (items: unknown[]) => {
            recorded.quickPicks.push(items);
            return recorded.pickFrom(items);
        },
        visibleTextEditors: [],
        onDidChangeActiveTextEditor: noEvent,
        onDidChangeVisibleTextEditors: noEvent,
        withProgress: async (_options: unknown, task: (p: unknown, t: unknown) => unknown) =>
            task({ report: () => undefined }, { isCancellationRequested: false, onCancellationRequested: noEvent }),
    },
    workspace: {
        getConfiguration(section?: string) {
            const values = { ...declaredDefaults(), ...recorded.settings };
            return {
                get<T>(key: string, fallback?: T): T | undefined {
                    const full = section && section !== 'docomplete' ? `${section}.${key}` : key;
                    return (full in values ? values[full] : fallback) as T | undefined;
                },
                has: (key: string) => key in values,
                inspect: () => undefined,
                update: async () => undefined,
            };
        },
        workspaceFolders: undefined,
        textDocuments: [] as unknown[],
        onDidChangeConfiguration: (listener: (event: unknown) => unknown) =>
            configurationChanges.event(listener),
        onDidOpenTextDocument: noEvent,
        onDidCloseTextDocument: noEvent,
        onDidChangeTextDocument: noEvent,
        onDidSaveTextDocument: noEvent,
        onWillSaveTextDocument: noEvent,
        onDidChangeWorkspaceFolders: noEvent,
        onDidCreateFiles: noEvent,
        onDidRenameFiles: noEvent,
        onDidDeleteFiles: noEvent,
        onWillCreateFiles: noEvent,
        onWillRenameFiles: noEvent,
        onWillDeleteFiles: noEvent,
        createFileSystemWatcher: () => inert('watcher'),
    },
    extensions: { getExtension: () => undefined, all: [] },
    languages: new Proxy(
        { match: matchesSelector } as Record<string, unknown>,
        {
            get(target: Record<string, unknown>, property: string) {
                if (property in target) {
                    return target[property];
                }
                // registerXxxProvider(selector, provider) → recorded, and a Disposable like the real API
                return (_selector: unknown, provider: unknown) => {
                    const kind = property.replace(/^register/, '');
                    recorded.providers.set(kind, [...(recorded.providers.get(kind) ?? []), provider]);
                    return new Disposable(() => undefined);
                };
            },
        },
    ),
};

const vscodeModule = new Proxy(stub, {
    get(target, property: string | symbol) {
        if (typeof property === 'symbol' || property === 'then') {
            return undefined;
        }
        if (property in target) {
            return target[property];
        }
        // Classes (CompletionItem, CodeLens, …) are extended by vscode-languageclient at load time;
        // enums and namespaces are read lazily.
        if (/^[A-Z]/.test(property)) {
            target[property] = class extends AnyVscodeClass {};
            return target[property];
        }
        return inert(`vscode.${property}`);
    },
});

/** The stub itself, for tests that set `window.activeTextEditor` or `workspace.textDocuments`. */
export const vscodeStub = stub as {
    window: Record<string, unknown>;
    workspace: Record<string, unknown>;
};

/** Makes `require('vscode')` return the stub; call before importing extension modules. */
export function installVscodeStub(): void {
    const moduleInternals = Module as unknown as {
        _resolveFilename: (request: string, ...rest: unknown[]) => string;
        _cache: Record<string, unknown>;
    };
    const original = moduleInternals._resolveFilename;
    const fakePath = path.join(__dirname, '__vscode_stub__.js');
    moduleInternals._resolveFilename = function (request: string, ...rest: unknown[]): string {
        return request === 'vscode' ? fakePath : original.call(this, request, ...rest);
    };
    moduleInternals._cache[fakePath] = {
        id: fakePath,
        filename: fakePath,
        loaded: true,
        exports: vscodeModule,
    };
}
