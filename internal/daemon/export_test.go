package daemon

// IsolateAWS is isolateAWS for the tests of package daemon_test.
var IsolateAWS = isolateAWS
