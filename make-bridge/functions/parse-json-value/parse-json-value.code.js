/**
 * Turn a JSON text typed into a field (a schema, metadata) into the value it describes.
 * Values that are already collections or arrays (mapped from another module) pass through,
 * and text that is not JSON is returned as it is, for Tierwise to refuse with a clear 422.
 */
function parseJsonValue(value) {
	if (typeof value !== 'string') {
		return value;
	}
	const text = value.trim();
	if (text === '') {
		return undefined;
	}
	try {
		return JSON.parse(text);
	} catch (error) {
		return value;
	}
}
