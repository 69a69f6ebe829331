/**
 * Partial accepts ("accept next word / line") reported to the server as `docomplete.acceptPartial`.
 *
 * VS Code tells an inline completion provider about a partial accept through
 * `handleDidPartiallyAcceptCompletionItem`, part of its proposed `inlineCompletionsAdditions`
 * API. vscode-languageclient does not implement it, so we add it to the provider the client
 * registered. Best effort: where VS Code does not call it, no partial accept is reported.
 */
import type * as vscode from 'vscode';
import { ExecuteCommandRequest, LanguageClient } from 'vscode-languageclient/node';

import { ACCEPT_PARTIAL_COMMAND, partialAcceptParams } from './protocol';

const INLINE_COMPLETION_METHOD = 'textDocument/inlineCompletion';

type PartialAcceptHandler = (item: vscode.InlineCompletionItem, info: unknown) => void;

interface ProvidersOf {
    /** Protected in vscode-languageclient's typings, present at run time (9.0.1 is pinned). */
    getAllProviders?(): Iterable<unknown>;
}

/** Adds the partial-accept hook to the client's inline providers; returns how many it found. */
export function reportPartialAccepts(client: LanguageClient, log: (line: string) => void): number {
    const feature = (client as unknown as { getFeature(method: string): ProvidersOf | undefined }).getFeature(
        INLINE_COMPLETION_METHOD,
    );
    const providers = [...(feature?.getAllProviders?.() ?? [])];
    const handler: PartialAcceptHandler = (item, info) => {
        const params = partialAcceptParams(item.command, info);
        if (params === undefined) {
            return;
        }
        client
            .sendRequest(ExecuteCommandRequest.type, { command: ACCEPT_PARTIAL_COMMAND, arguments: [params] })
            .catch((error: unknown) => log(`${ACCEPT_PARTIAL_COMMAND} not sent: ${String(error)}`));
    };
    for (const provider of providers) {
        (provider as { handleDidPartiallyAcceptCompletionItem?: PartialAcceptHandler }).handleDidPartiallyAcceptCompletionItem =
            handler;
    }
    return providers.length;
}
