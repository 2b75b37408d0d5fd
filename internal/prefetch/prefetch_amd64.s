#include "textflag.h"

// func Line(p unsafe.Pointer)
TEXT ·Line(SB), NOSPLIT|NOFRAME, $0-8
	MOVQ p+0(FP), AX
	PREFETCHT0 (AX)
	RET

// func Flow(p unsafe.Pointer)
TEXT ·Flow(SB), NOSPLIT|NOFRAME, $0-8
	MOVQ p+0(FP), AX
	PREFETCHT0 (AX)
	PREFETCHT0 64(AX)
	PREFETCHT0 127(AX)
	RET

// func Frames(frames [][]byte)
TEXT ·Frames(SB), NOSPLIT|NOFRAME, $0-24
	MOVQ frames_base+0(FP), AX
	MOVQ frames_len+8(FP), CX
	TESTQ CX, CX
	JZ fdone
floop:
	MOVQ (AX), DX
	PREFETCHT0 (DX)
	ADDQ $24, AX
	DECQ CX
	JNZ floop
fdone:
	RET

// func Lines(addrs []uintptr)
TEXT ·Lines(SB), NOSPLIT|NOFRAME, $0-24
	MOVQ addrs_base+0(FP), AX
	MOVQ addrs_len+8(FP), CX
	TESTQ CX, CX
	JZ ldone
lloop:
	MOVQ (AX), DX
	PREFETCHT0 (DX)
	ADDQ $8, AX
	DECQ CX
	JNZ lloop
ldone:
	RET
