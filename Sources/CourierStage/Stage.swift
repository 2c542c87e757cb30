// The staging cycle lives here (issue #3).
