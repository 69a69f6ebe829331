/** The status bar item: shows the server's state and "thinking" while a request is in flight. */
import * as vscode from 'vscode';

export type ServerState = 'starting' | 'ready' | 'stopped' | 'failed';

const STATE_TEXT: Record<ServerState, string> = {
    starting: '$(loading~spin) docomplete',
    ready: '$(check) docomplete',
    stopped: '$(circle-slash) docomplete',
    failed: '$(error) docomplete',
};

const STATE_TOOLTIP: Record<ServerState, string> = {
    starting: 'docomplete: starting the language server…',
    ready: 'docomplete: ready — click for the log',
    stopped: 'docomplete: the language server is not running — click for the log',
    failed: 'docomplete: the language server failed — click for the log',
};

export class StatusIndicator implements vscode.Disposable {
    private readonly item: vscode.StatusBarItem;
    private state: ServerState = 'starting';
    private inFlight = 0;

    constructor(clickCommand: string) {
        this.item = vscode.window.createStatusBarItem(vscode.StatusBarAlignment.Right, 100);
        this.item.command = clickCommand;
        this.render();
        this.item.show();
    }

    setState(state: ServerState): void {
        this.state = state;
        if (state !== 'ready') {
            this.inFlight = 0;
        }
        this.render();
    }

    /** Marks one request as running; call the returned function when it finishes. */
    beginRequest(): () => void {
        this.inFlight += 1;
        this.render();
        let finished = false;
        return () => {
            // Idempotent: a request may end by both completion and cancellation.
            if (!finished) {
                finished = true;
                this.inFlight = Math.max(0, this.inFlight - 1);
                this.render();
            }
        };
    }

    get isThinking(): boolean {
        return this.inFlight > 0;
    }

    get text(): string {
        return this.item.text;
    }

    private render(): void {
        if (this.inFlight > 0 && this.state === 'ready') {
            this.item.text = '$(loading~spin) docomplete: thinking…';
            this.item.tooltip = 'docomplete: sampling and checking candidates';
        } else {
            this.item.text = STATE_TEXT[this.state];
            this.item.tooltip = STATE_TOOLTIP[this.state];
        }
    }

    dispose(): void {
        this.item.dispose();
    }
}
