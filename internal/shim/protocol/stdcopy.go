package protocol

// Stream numbers of Docker's stdcopy framing.
const (
	Stdin  byte = 0
	Stdout byte = 1
	Stderr byte = 2
)

// FrameHeaderLen is the size of a stdcopy frame header.
const FrameHeaderLen = 8

// MaxClientBacklog is how many bytes of output may wait for one attach
// client before the monitor disconnects it.
const MaxClientBacklog = 1 << 20

// AppendFrameHeader appends the stdcopy header of an n-byte payload of
// stream: the stream byte, three zero bytes, n as a big-endian uint32.
func AppendFrameHeader(dst []byte, stream byte, n int) []byte {
	return append(dst, stream, 0, 0, 0, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

// AppendFrame appends p as one stdcopy frame of stream.
func AppendFrame(dst []byte, stream byte, p []byte) []byte {
	return append(AppendFrameHeader(dst, stream, len(p)), p...)
}

// ParseFrameHeader returns the stream and payload length of the header h
// (at least FrameHeaderLen bytes).
func ParseFrameHeader(h []byte) (stream byte, n int) {
	return h[0], int(uint32(h[4])<<24 | uint32(h[5])<<16 | uint32(h[6])<<8 | uint32(h[7]))
}
