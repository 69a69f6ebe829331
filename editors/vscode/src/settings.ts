/**
 * The extension's settings: which ones the server receives and how the server is started.
 *
 * Only the server's own keys travel to it (initializationOptions, workspace/configuration,
 * didChangeConfiguration); client-only keys such as `pythonPath` stay here.
 */
import * as vscode from 'vscode';

export const SECTION = 'docomplete';

/** Keys the docomplete language server understands, in its camelCase spelling. */
export const SERVER_SETTING_KEYS = [
    'backend',
    'modelPath',
    'model',
    'n',
    'temperature',
    'topP',
    'maxTokens',
    'doctestFilter',
    'doctestTimeout',
    'showFailing',
    'sandboxSitePackages',
    'fimTemplate',
    'requestTimeout',
    'contextTokens',
    'abArms',
    'abAssignment',
    'abSeed',
    'retentionDelays',
    'dismissTimeout',
    'logLevel',
    'telemetryFile',
] as const;

export type ServerSettingKey = (typeof SERVER_SETTING_KEYS)[number];

/** Changing one of these needs a new server process, not just a configuration update. */
export const RESTART_SETTING_KEYS = ['pythonPath', 'serverCommand'] as const;

export type ServerSettings = Partial<Record<ServerSettingKey, unknown>>;

/** The part of `vscode.WorkspaceConfiguration` this module reads (keeps it testable). */
export interface SettingsReader {
    get<T>(key: string): T | undefined;
}

/**
 * Picks the server's settings out of the `docomplete` section.
 *
 * Empty strings mean "use the server's default" (for example an unset `modelPath`) and are
 * left out rather than sent, so the server never has to guess what "" means.
 */
export function readServerSettings(config: SettingsReader): ServerSettings {
    const settings: ServerSettings = {};
    for (const key of SERVER_SETTING_KEYS) {
        const value = config.get<unknown>(key);
        if (value === undefined || value === null || value === '') {
            continue;
        }
        settings[key] = value;
    }
    return settings;
}

/** Reads the server settings for a document (resource-scoped settings can differ per folder). */
export function currentServerSettings(scope?: vscode.ConfigurationScope): ServerSettings {
    return readServerSettings(vscode.workspace.getConfiguration(SECTION, scope));
}

/** Whether a configuration change touches a setting that needs a server restart. */
export function changeNeedsRestart(event: vscode.ConfigurationChangeEvent): boolean {
    return RESTART_SETTING_KEYS.some((key) => event.affectsConfiguration(`${SECTION}.${key}`));
}
