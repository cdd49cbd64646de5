import type {
	IDataObject,
	IExecuteFunctions,
	IHttpRequestOptions,
	INodeExecutionData,
	INodeProperties,
	INodeType,
	INodeTypeDescription,
	JsonObject,
} from 'n8n-workflow';
import { NodeApiError, NodeConnectionTypes, NodeOperationError } from 'n8n-workflow';

// One n8n node for the four Tierwise nodes. Each item becomes one POST /v1/nodes/{operation}; the
// service's JSON answer becomes the item. Field names in the request body are the protocol's
// (docs/protocol.md), so the body can be checked against GET /v1/nodes.

const classify = { operation: ['classify'] };
const extract = { operation: ['extract'] };
const draft = { operation: ['draft'] };
const draftJson = { operation: ['draft'], format: ['json'] };
const judge = { operation: ['judge'] };

const EXAMPLE_SCHEMA = `{
  "type": "object",
  "properties": {
    "name": { "type": "string" },
    "email": { "type": "string" }
  },
  "required": ["name"]
}`;

const properties: INodeProperties[] = [
	{
		displayName: 'Operation',
		name: 'operation',
		type: 'options',
		noDataExpression: true,
		options: [
			{
				name: 'Classify',
				value: 'classify',
				action: 'Classify text into labels',
				description: 'Pick the label (or labels) that fit the input; starts on nano',
			},
			{
				name: 'Draft',
				value: 'draft',
				action: 'Draft text or a JSON document',
				description: 'Write a text, or a document valid against a JSON Schema; starts on mini',
			},
			{
				name: 'Extract',
				value: 'extract',
				action: 'Extract fields with a JSON schema',
				description: 'Pull an object valid against a JSON Schema out of the input; starts on nano',
			},
			{
				name: 'Judge',
				value: 'judge',
				action: 'Judge candidates against criteria',
				description:
					'Give one or several candidates a verdict, a score and reasons; starts on full',
			},
		],
		default: 'classify',
	},
	{
		displayName: 'Input',
		name: 'input',
		type: 'string',
		typeOptions: { rows: 4 },
		default: '',
		required: true,
		displayOptions: { show: { operation: ['classify', 'extract', 'draft'] } },
		description:
			'The text to work on. An expression that returns an object or array sends it as JSON.',
	},
	{
		displayName: 'Context',
		name: 'input',
		type: 'string',
		typeOptions: { rows: 3 },
		default: '',
		displayOptions: { show: judge },
		description: 'Optional: the task the candidates answer',
	},
	{
		displayName: 'Labels',
		name: 'labels',
		type: 'string',
		default: '',
		required: true,
		placeholder: 'billing, bug, feature_request',
		displayOptions: { show: classify },
		description:
			'Comma-separated labels, or an expression returning an array of strings or {name, description} objects',
	},
	{
		displayName: 'Multi Label',
		name: 'multiLabel',
		type: 'boolean',
		default: false,
		displayOptions: { show: classify },
		description: 'Whether to choose every label that applies instead of exactly one',
	},
	{
		displayName: 'Schema',
		name: 'schema',
		type: 'json',
		default: EXAMPLE_SCHEMA,
		required: true,
		displayOptions: { show: extract },
		description: 'The JSON Schema (object root) the extracted object must satisfy',
	},
	{
		displayName: 'Format',
		name: 'format',
		type: 'options',
		options: [
			{ name: 'Text', value: 'text', description: 'Answer {"text": "..."}' },
			{ name: 'JSON', value: 'json', description: 'Answer an object valid against a JSON Schema' },
		],
		default: 'text',
		displayOptions: { show: draft },
	},
	{
		displayName: 'Schema',
		name: 'schema',
		type: 'json',
		default: EXAMPLE_SCHEMA,
		required: true,
		displayOptions: { show: draftJson },
		description: 'The JSON Schema of the document to draft',
	},
	{
		displayName: 'Candidates',
		name: 'candidateMode',
		type: 'options',
		options: [
			{ name: 'One Candidate', value: 'candidate', description: 'Judge a single answer' },
			{
				name: 'Several Candidates',
				value: 'candidates',
				description: 'Compare 1 to 50 answers and pick the best',
			},
		],
		default: 'candidate',
		displayOptions: { show: judge },
	},
	{
		displayName: 'Candidate',
		name: 'candidate',
		type: 'string',
		typeOptions: { rows: 4 },
		default: '',
		required: true,
		displayOptions: { show: { operation: ['judge'], candidateMode: ['candidate'] } },
		description: 'The answer to judge. An expression that returns an object sends it as JSON.',
	},
	{
		displayName: 'Candidates',
		name: 'candidates',
		type: 'json',
		default: '[]',
		required: true,
		displayOptions: { show: { operation: ['judge'], candidateMode: ['candidates'] } },
		description: 'A JSON array of 1 to 50 answers (strings or objects)',
	},
	{
		displayName: 'Criteria',
		name: 'criteria',
		type: 'string',
		typeOptions: { rows: 4 },
		default: '',
		required: true,
		displayOptions: { show: judge },
		description: 'One criterion per line, or an expression returning an array of strings',
	},
	{
		displayName: 'Instructions',
		name: 'instructions',
		type: 'string',
		typeOptions: { rows: 3 },
		default: '',
		description: "Extra guidance, appended after the node's own prompt",
	},
	{
		displayName: 'Tier',
		name: 'tier',
		type: 'options',
		// eslint-disable-next-line n8n-nodes-base/node-param-options-type-unsorted-items -- the tier ladder reads cheapest first
		options: [
			{
				name: 'Node Default',
				value: 'default',
				description: 'Classify and extract start on nano, draft on mini, judge on full',
			},
			{
				name: 'Auto',
				value: 'auto',
				description: 'Nano, or mini for large inputs, nested schemas and many conditions',
			},
			{ name: 'Nano', value: 'nano' },
			{ name: 'Mini', value: 'mini' },
			{ name: 'Full', value: 'full' },
		],
		default: 'default',
		description: 'The tier to start on; a wrong answer is repaired once, then escalated',
	},
	{
		displayName: 'Max Tier',
		name: 'maxTier',
		type: 'options',
		options: [
			{ name: 'Nano', value: 'nano' },
			{ name: 'Mini', value: 'mini' },
			{ name: 'Full', value: 'full' },
		],
		default: 'full',
		description: 'The highest tier escalation may reach',
	},
	{
		displayName: 'Options',
		name: 'options',
		type: 'collection',
		placeholder: 'Add Option',
		default: {},
		options: [
			{
				displayName: 'Idempotency Key',
				name: 'idempotency',
				type: 'boolean',
				default: true,
				description:
					"Whether to send an Idempotency-Key made of the execution, node, run and item, so that the node's Retry On Fail gets the first answer back instead of paying again",
			},
			{
				displayName: 'Max Words',
				name: 'maxWords',
				type: 'number',
				typeOptions: { minValue: 1 },
				default: 200,
				displayOptions: { show: { '/operation': ['draft'] } },
				description: 'Upper bound on the number of words of a text draft',
			},
			{
				displayName: 'Metadata',
				name: 'metadata',
				type: 'json',
				default: '{}',
				description: 'A JSON object echoed back in the answer and stored with the run',
			},
			{
				displayName: 'Min Confidence',
				name: 'minConfidence',
				type: 'number',
				typeOptions: { minValue: 0, maxValue: 1, numberPrecision: 2 },
				default: 0.5,
				displayOptions: { show: { '/operation': ['classify'] } },
				description: 'Below this confidence the run escalates to the next tier',
			},
			{
				displayName: 'Processing',
				name: 'processing',
				type: 'options',
				options: [
					{
						name: 'Flex',
						value: 'flex',
						description:
							'Half price, slower; a call that finds no flex capacity is repeated at once on standard',
					},
					{
						name: 'Service Default',
						value: '',
						description: 'Standard, unless the service sets TIERWISE_PROCESSING',
					},
					{ name: 'Standard', value: 'standard' },
				],
				default: '',
				description: 'The price lane of the model calls',
			},
			{
				displayName: 'Step',
				name: 'step',
				type: 'string',
				default: '',
				placeholder: 'support-triage/intent',
				description:
					'The pipeline step this call belongs to; with tier Auto, Tierwise learns the cheapest tier that is still right for each step. Empty: a fingerprint of the instructions and the labels or schema.',
			},
			{
				displayName: 'Timeout',
				name: 'timeout',
				type: 'number',
				typeOptions: { minValue: 1 },
				default: 150000,
				description:
					'Milliseconds to wait for the answer (the service ends a run after TIERWISE_RUN_TIMEOUT_S, 120 s by default)',
			},
		],
	},
];

type Operation = 'classify' | 'extract' | 'draft' | 'judge';

interface Options {
	idempotency?: boolean;
	maxWords?: number;
	metadata?: unknown;
	step?: string;
	processing?: string;
	minConfidence?: number;
	timeout?: number;
}

function isObject(value: unknown): value is IDataObject {
	return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A string split into trimmed, non-empty parts; arrays (from expressions) pass through. */
function toList(value: unknown, separator: RegExp): unknown[] {
	if (Array.isArray(value)) return value;
	if (typeof value === 'string') {
		return value
			.split(separator)
			.map((part) => part.trim())
			.filter((part) => part !== '');
	}
	if (value === undefined || value === null) return [];
	return [value];
}

/** A JSON parameter: the object an expression gave, or the parsed text. */
function parseJson(
	fn: IExecuteFunctions,
	value: unknown,
	label: string,
	itemIndex: number,
): unknown {
	if (typeof value !== 'string') return value;
	try {
		return JSON.parse(value);
	} catch (error) {
		throw new NodeOperationError(
			fn.getNode(),
			`${label} is not valid JSON: ${(error as Error).message}`,
			{
				itemIndex,
			},
		);
	}
}

/** Whether a parameter holds something to send (an empty text field means "not given"). */
function given(value: unknown): boolean {
	return value !== undefined && value !== null && value !== '';
}

/** The protocol's request body for one item. */
function requestBody(fn: IExecuteFunctions, operation: Operation, itemIndex: number): IDataObject {
	const body: IDataObject = {};
	const input = fn.getNodeParameter('input', itemIndex, '') as unknown;
	if (operation !== 'judge' || given(input)) body.input = input as IDataObject;

	const instructions = fn.getNodeParameter('instructions', itemIndex, '') as string;
	if (given(instructions)) body.instructions = instructions;
	const tier = fn.getNodeParameter('tier', itemIndex, 'default') as string;
	if (tier !== 'default') body.tier = tier;
	body.max_tier = fn.getNodeParameter('maxTier', itemIndex, 'full') as string;

	const options = fn.getNodeParameter('options', itemIndex, {}) as Options;
	if (given(options.metadata)) {
		body.metadata = parseJson(fn, options.metadata, 'Metadata', itemIndex) as IDataObject;
	}
	if (given(options.step)) body.step = options.step;
	if (given(options.processing)) body.processing = options.processing;

	if (operation === 'classify') {
		body.labels = toList(fn.getNodeParameter('labels', itemIndex, ''), /,/) as IDataObject[];
		body.multi_label = fn.getNodeParameter('multiLabel', itemIndex, false) as boolean;
		if (options.minConfidence !== undefined) body.min_confidence = options.minConfidence;
	} else if (operation === 'extract') {
		body.schema = parseJson(
			fn,
			fn.getNodeParameter('schema', itemIndex),
			'Schema',
			itemIndex,
		) as IDataObject;
	} else if (operation === 'draft') {
		const format = fn.getNodeParameter('format', itemIndex, 'text') as string;
		body.format = format;
		if (format === 'json') {
			body.schema = parseJson(
				fn,
				fn.getNodeParameter('schema', itemIndex),
				'Schema',
				itemIndex,
			) as IDataObject;
		}
		if (options.maxWords !== undefined) body.max_words = options.maxWords;
	} else {
		const mode = fn.getNodeParameter('candidateMode', itemIndex, 'candidate') as string;
		if (mode === 'candidates') {
			const candidates = fn.getNodeParameter('candidates', itemIndex);
			body.candidates = parseJson(fn, candidates, 'Candidates', itemIndex) as IDataObject[];
		} else {
			body.candidate = fn.getNodeParameter('candidate', itemIndex) as IDataObject;
		}
		body.criteria = toList(fn.getNodeParameter('criteria', itemIndex, ''), /\r?\n/) as string[];
	}
	return body;
}

/**
 * The same key for the same item of the same node run, whichever try of Retry On Fail sends it, and a
 * different key everywhere else: across n8n instances, workflows, executions (the start time guards
 * against execution ids reused after a database reset), nodes, loop runs and items.
 */
function idempotencyKey(fn: IExecuteFunctions, itemIndex: number): string | undefined {
	const executionId = fn.getExecutionId();
	if (!executionId) return undefined;
	const parts = [
		'n8n',
		fn.getInstanceId(),
		fn.getWorkflow().id ?? '',
		executionId,
		String(fn.getExecutionContext?.()?.establishedAt ?? ''),
		fn.getNode().id,
		String(fn.getWorkflowDataProxy(itemIndex).$thisRunIndex),
		String(itemIndex),
	];
	return parts.join(':');
}

/** A problem+json answer as a node error whose message is the problem's detail. */
function problemError(fn: IExecuteFunctions, status: number, body: unknown, itemIndex: number) {
	let problem: IDataObject;
	if (isObject(body)) {
		problem = body;
	} else {
		let text = typeof body === 'string' ? body : '';
		if (Buffer.isBuffer(body)) text = body.toString('utf8');
		problem = { detail: text.trim() };
	}
	const detail =
		typeof problem.detail === 'string' && problem.detail !== ''
			? problem.detail
			: `Tierwise answered HTTP ${status}`;
	const title = typeof problem.title === 'string' ? problem.title : `HTTP ${status}`;
	const type = typeof problem.type === 'string' ? ` (${problem.type})` : '';
	return new NodeApiError(fn.getNode(), problem as JsonObject, {
		message: detail,
		description: `${title}${type}`,
		httpCode: String(status),
		itemIndex,
	});
}

/** Errors this node raised itself stay as they are; anything else is wrapped with the item's index. */
function asNodeError(
	fn: IExecuteFunctions,
	error: unknown,
	itemIndex: number,
): NodeApiError | NodeOperationError {
	if (error instanceof NodeApiError || error instanceof NodeOperationError) return error;
	return new NodeOperationError(fn.getNode(), error as Error, { itemIndex });
}

export class Tierwise implements INodeType {
	description: INodeTypeDescription = {
		displayName: 'Tierwise',
		name: 'tierwise',
		icon: { light: 'file:../../icons/tierwise.svg', dark: 'file:../../icons/tierwise.dark.svg' },
		group: ['transform'],
		version: 1,
		subtitle: '={{$parameter["operation"]}}',
		description:
			'Classify, extract, draft and judge with LLMs on the right tier, validated and costed',
		defaults: {
			name: 'Tierwise',
		},
		usableAsTool: true,
		inputs: [NodeConnectionTypes.Main],
		outputs: [NodeConnectionTypes.Main],
		credentials: [
			{
				name: 'tierwiseApi',
				required: true,
			},
		],
		properties,
	};

	async execute(this: IExecuteFunctions): Promise<INodeExecutionData[][]> {
		const items = this.getInputData();
		const returnData: INodeExecutionData[] = [];
		const credentials = await this.getCredentials<{ baseUrl: string }>('tierwiseApi');
		const baseURL = String(credentials.baseUrl ?? '').replace(/\/+$/, '');

		for (let itemIndex = 0; itemIndex < items.length; itemIndex++) {
			try {
				const operation = this.getNodeParameter('operation', itemIndex) as Operation;
				const options = this.getNodeParameter('options', itemIndex, {}) as Options;
				const headers: IDataObject = { 'Content-Type': 'application/json' };
				const key = options.idempotency === false ? undefined : idempotencyKey(this, itemIndex);
				if (key !== undefined) headers['Idempotency-Key'] = key;

				const request: IHttpRequestOptions = {
					method: 'POST',
					baseURL,
					url: `/v1/nodes/${operation}`,
					headers,
					body: requestBody(this, operation, itemIndex),
					json: true,
					timeout: options.timeout ?? 150000,
					returnFullResponse: true,
					ignoreHttpStatusErrors: true,
				};
				const response = (await this.helpers.httpRequestWithAuthentication.call(
					this,
					'tierwiseApi',
					request,
				)) as { body: unknown; statusCode: number };

				if (response.statusCode >= 400) {
					throw problemError(this, response.statusCode, response.body, itemIndex);
				}
				const body = typeof response.body === 'string' ? JSON.parse(response.body) : response.body;
				if (!isObject(body)) {
					throw new NodeOperationError(this.getNode(), 'Tierwise answered without a JSON object', {
						itemIndex,
					});
				}
				returnData.push({ json: body, pairedItem: { item: itemIndex } });
			} catch (error) {
				const nodeError = asNodeError(this, error, itemIndex);
				if (!this.continueOnFail()) throw nodeError;
				const json: IDataObject = { error: nodeError.message };
				if (nodeError instanceof NodeApiError) {
					json.httpCode = nodeError.httpCode;
					json.problem = nodeError.errorResponse as IDataObject;
				}
				returnData.push({ json, pairedItem: { item: itemIndex } });
			}
		}
		return [returnData];
	}
}
