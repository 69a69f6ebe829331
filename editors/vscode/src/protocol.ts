/**
 * docomplete's custom LSP methods and the shapes we read from them.
 *
 * Pure (no `vscode` import) so the Node tests can drive a real server with it. The parsers are
 * lenient about optional fields: an older or newer server must not break the picker.
 */

export const CANDIDATES_REQUEST = 'docomplete/candidates';
export const SHOWN_NOTIFICATION = 'docomplete/shown';
export const ACCEPT_COMMAND = 'docomplete.accept';
export const ACCEPT_PARTIAL_COMMAND = 'docomplete.acceptPartial';

export interface LspPosition {
    line: number;
    character: number;
}

export interface LspRange {
    start: LspPosition;
    end: LspPosition;
}

export interface LspCommand {
    title: string;
    command: string;
    arguments?: unknown[];
}

export interface DoctestVerdict {
    passed: number;
    total: number;
    status: string;
    /** The server's verdict: passed, failed, unverifiable or skipped (servers since 0.2). */
    verdict?: string;
}

/** One ranked candidate as the picker shows it. */
export interface RankedCandidate {
    /** Text to insert at `range` (or at the cursor when there is no range). */
    insertText: string;
    range?: LspRange;
    /** Mean token log-prob: higher is more likely. */
    score?: number;
    doctest?: DoctestVerdict;
    /** The server's `docomplete.accept` command for this candidate (telemetry). */
    command?: LspCommand;
}

export interface CandidatesParams {
    textDocument: { uri: string };
    position: LspPosition;
}

export function candidatesParams(uri: string, position: LspPosition): CandidatesParams {
    return { textDocument: { uri }, position: { line: position.line, character: position.character } };
}

function isRecord(value: unknown): value is Record<string, unknown> {
    return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function asNumber(value: unknown): number | undefined {
    return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
}

function asRange(value: unknown): LspRange | undefined {
    if (!isRecord(value) || !isRecord(value.start) || !isRecord(value.end)) {
        return undefined;
    }
    const { start, end } = value;
    const numbers = [start.line, start.character, end.line, end.character].map(asNumber);
    if (numbers.some((n) => n === undefined)) {
        return undefined;
    }
    const [sl, sc, el, ec] = numbers as number[];
    return { start: { line: sl, character: sc }, end: { line: el, character: ec } };
}

function asVerdict(value: unknown): DoctestVerdict | undefined {
    if (!isRecord(value)) {
        return undefined;
    }
    const passed = asNumber(value.passed);
    const total = asNumber(value.total);
    if (passed === undefined || total === undefined) {
        return undefined;
    }
    return { passed, total, status: typeof value.status === 'string' ? value.status : '' };
}

function asCommand(value: unknown): LspCommand | undefined {
    if (!isRecord(value) || typeof value.command !== 'string') {
        return undefined;
    }
    return {
        title: typeof value.title === 'string' ? value.title : '',
        command: value.command,
        arguments: Array.isArray(value.arguments) ? value.arguments : undefined,
    };
}

/** Reads one candidate; `undefined` when it carries no text to insert. */
export function parseCandidate(value: unknown): RankedCandidate | undefined {
    if (!isRecord(value)) {
        return undefined;
    }
    const text = [value.insertText, value.text].find((t) => typeof t === 'string') as
        | string
        | undefined;
    if (text === undefined || text === '') {
        return undefined;
    }
    // Older servers sent the doctest result as `verdict`; newer ones send `doctest` plus a
    // `verdict` word (passed, failed, unverifiable, skipped).
    const doctestSource = value.doctest ?? (isRecord(value.verdict) ? value.verdict : undefined);
    const doctest = asVerdict(doctestSource);
    if (doctest && typeof value.verdict === 'string') {
        doctest.verdict = value.verdict;
    }
    return {
        insertText: text,
        range: asRange(value.range),
        score: asNumber(value.score) ?? asNumber(value.meanLogprob),
        doctest,
        command: asCommand(value.command),
    };
}

/**
 * Reads a `docomplete/candidates` result: `{requestId, candidates: [...]}` (or a bare list).
 *
 * Candidates carry no command of their own; choosing one reports `docomplete.accept` with the
 * request id and the candidate's index, exactly like accepting an inline suggestion.
 */
export function parseCandidatesResult(result: unknown): RankedCandidate[] {
    const list = Array.isArray(result)
        ? result
        : isRecord(result) && Array.isArray(result.candidates)
          ? result.candidates
          : [];
    const requestId = isRecord(result) ? result.requestId : undefined;
    const parsed: RankedCandidate[] = [];
    list.forEach((value: unknown, position: number) => {
        const candidate = parseCandidate(value);
        if (!candidate) {
            return;
        }
        if (!candidate.command && (typeof requestId === 'string' || typeof requestId === 'number')) {
            const rank = isRecord(value) ? asNumber(value.rank) : undefined;
            candidate.command = {
                title: 'docomplete: accepted',
                command: ACCEPT_COMMAND,
                arguments: [{ requestId, index: rank !== undefined ? rank - 1 : position }],
            };
        }
        parsed.push(candidate);
    });
    return parsed;
}

/** Label, description and detail for one picker row. */
export function describeCandidate(
    candidate: RankedCandidate,
    rank: number,
): { label: string; description: string; detail: string } {
    const lines = candidate.insertText.split('\n');
    const firstLine = lines.find((line) => line.trim() !== '')?.trim() ?? '';
    const facts: string[] = [];
    if (candidate.doctest) {
        facts.push(describeVerdict(candidate.doctest));
    }
    if (candidate.score !== undefined) {
        facts.push(`score ${candidate.score.toFixed(2)}`);
    }
    const more = lines.length > 1 ? ` (+${lines.length - 1} lines)` : '';
    return {
        label: `${rank}. ${firstLine}${more}`,
        description: facts.join(' · '),
        detail: lines
            .map((line) => line.trim())
            .filter((line) => line !== '')
            .slice(1, 4)
            .join(' ⏎ '),
    };
}

/** Arguments for `docomplete/shown`, taken from the accept command the server attached. */
export function shownParams(command: LspCommand | undefined): unknown {
    const first = command?.arguments?.[0];
    return isRecord(first) ? first : {};
}

/**
 * Arguments for `docomplete.acceptPartial`: the item's accept arguments plus how many characters
 * the user took. VS Code passes either that number or `{kind, acceptedLength}` (the proposed API
 * changed shape); `undefined` when the item is not one of ours.
 */
export function partialAcceptParams(
    command: LspCommand | undefined,
    info: unknown,
): { requestId: unknown; index: number; acceptedLength?: number } | undefined {
    const first = command?.arguments?.[0];
    if (command?.command !== ACCEPT_COMMAND || !isRecord(first) || first.requestId === undefined) {
        return undefined;
    }
    const length = asNumber(info) ?? (isRecord(info) ? asNumber(info.acceptedLength) : undefined);
    return {
        requestId: first.requestId,
        index: asNumber(first.index) ?? 0,
        ...(length !== undefined ? { acceptedLength: length } : {}),
    };
}

/**
 * The doctest part of a picker row: `doctests 2/2` (all passed), `doctests 1/2 failed`,
 * `doctests unverifiable` (the examples could not run: a package the sandbox lacks) or
 * `doctests skipped` (nothing was checked) — never a bare `0/3` for examples that did not run.
 */
export function describeVerdict(doctest: DoctestVerdict): string {
    const { passed, total, status, verdict } = doctest;
    switch (verdict) {
        case 'passed':
            return `doctests ${passed}/${total}`;
        case 'failed':
            return total > 0 ? `doctests ${passed}/${total} failed` : 'doctests failed';
        case 'unverifiable':
            return 'doctests unverifiable';
        case 'skipped':
            return 'doctests skipped';
        default:
            return total > 0 ? `doctests ${passed}/${total}` : `doctests: ${status || 'none'}`;
    }
}

/** A message for the user with one `docomplete: ` prefix (server messages carry their own). */
export function prefixed(message: string): string {
    return message.startsWith('docomplete:') ? message : `docomplete: ${message}`;
}
