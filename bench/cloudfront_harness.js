// Runs a CloudFront Function (cloudfront-js-2.0, viewer request) under node for the tests.
//
//   node cloudfront_harness.js FUNCTION.js < requests.jsonl > results.jsonl
//
// The function's code runs in a fresh V8 context without require() or process, as at the
// edge. Each input line is {"uri": ..., "method": ..., "headers": {name: value | [values]}};
// the harness builds the cloudfront-js-2.0 event (lower-case header names, {value} objects,
// multiValue for repeated headers), calls handler(event) and prints the returned request's
// headers as one JSON line {name: value}.
"use strict";
const fs = require("fs");
const readline = require("readline");
const vm = require("vm");

const context = vm.createContext({});
vm.runInContext(fs.readFileSync(process.argv[2], "utf8"), context, { filename: process.argv[2] });
if (typeof context.handler !== "function") {
    throw new Error("the function code defines no handler(event)");
}

function event(input) {
    const headers = {};
    for (const [name, value] of Object.entries(input.headers || {})) {
        const values = Array.isArray(value) ? value : [value];
        const header = { value: values[0] };
        if (values.length > 1) {
            header.multiValue = values.map((item) => ({ value: item }));
        }
        headers[name.toLowerCase()] = header;
    }
    return {
        version: "1.0",
        context: {
            distributionDomainName: "d111111abcdef8.cloudfront.net",
            distributionId: "EDFDVBD6EXAMPLE",
            eventType: "viewer-request",
            requestId: "4TyzHTaYWb1GX1qTfsHhEqV6HUDd_BzoBZnwfnvQc_1oF26ClkoUSEQ==",
        },
        viewer: { ip: "198.51.100.11" },
        request: {
            method: input.method || "GET",
            uri: input.uri,
            querystring: {},
            headers: headers,
            cookies: {},
        },
    };
}

const lines = readline.createInterface({ input: process.stdin, terminal: false });
lines.on("line", (line) => {
    const request = context.handler(event(JSON.parse(line)));
    const out = {};
    for (const [name, header] of Object.entries(request.headers)) {
        out[name] = header.value;
    }
    process.stdout.write(JSON.stringify(out) + "\n");
});
