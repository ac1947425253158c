package mitoken

func init() {
	// Keep the Arc agent presence check hermetic: a machine that happens to
	// have the agent installed must not change what the tests detect.
	arcHimdsPath = ""
}
