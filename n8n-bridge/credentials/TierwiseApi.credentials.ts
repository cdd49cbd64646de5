import type {
	IAuthenticateGeneric,
	Icon,
	ICredentialTestRequest,
	ICredentialType,
	INodeProperties,
} from 'n8n-workflow';

export class TierwiseApi implements ICredentialType {
	name = 'tierwiseApi';

	displayName = 'Tierwise API';

	icon: Icon = { light: 'file:../icons/tierwise.svg', dark: 'file:../icons/tierwise.dark.svg' };

	documentationUrl = 'https://github.com/tierwise/tierwise/tree/main/n8n-bridge#credentials';

	properties: INodeProperties[] = [
		{
			displayName: 'Base URL',
			name: 'baseUrl',
			type: 'string',
			default: 'http://127.0.0.1:8080',
			required: true,
			placeholder: 'http://127.0.0.1:8080',
			description: 'Where the Tierwise service listens, without /v1',
		},
		{
			displayName: 'API Key',
			name: 'apiKey',
			type: 'string',
			typeOptions: { password: true },
			default: '',
			required: true,
			description: 'A key from TIERWISE_API_KEYS or from "tierwise keys create"',
		},
	];

	authenticate: IAuthenticateGeneric = {
		type: 'generic',
		properties: {
			headers: {
				Authorization: '=Bearer {{$credentials.apiKey}}',
			},
		},
	};

	// GET /v1/nodes rather than /healthz: /healthz answers without a key, so only a keyed endpoint can
	// tell a wrong key (401) from a right one. Both show that the base URL reaches the service.
	test: ICredentialTestRequest = {
		request: {
			baseURL: '={{$credentials.baseUrl}}',
			url: '/v1/nodes',
			method: 'GET',
		},
	};
}
