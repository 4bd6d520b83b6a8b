package chaos

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// OpKind is what a register operation did.
type OpKind int

// Register operations: a READ of the whole file, or a FILE_SYNC WRITE that
// replaces its whole (fixed-size) content.
const (
	Read OpKind = iota
	Write
)

func (k OpKind) String() string {
	if k == Write {
		return "write"
	}
	return "read"
}

// RegOp is one client operation on a file used as a register.
type RegOp struct {
	Client int
	Key    string // the file
	Kind   OpKind
	Value  string // written, or read back
	Call   time.Time
	Return time.Time
	// Unknown: a write whose outcome the client does not know (timeout,
	// connection lost, an error reply): it may take effect at any time
	// after Call, or never.
	Unknown bool
}

func (o RegOp) String() string {
	ret := o.Return.Format("15:04:05.000000")
	if o.Unknown {
		ret = "?"
	}
	return fmt.Sprintf("client %d %s %s %q [%s, %s]", o.Client, o.Kind, o.Key, o.Value, o.Call.Format("15:04:05.000000"), ret)
}

type regInput struct {
	kind  OpKind
	key   string
	value string
}

// RegisterModel is porcupine's model of a set of independent registers
// (one per file), every one starting as init.
func RegisterModel(init string) porcupine.Model {
	return porcupine.Model{
		Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
			byKey := map[string][]porcupine.Operation{}
			var keys []string
			for _, op := range h {
				k := op.Input.(regInput).key
				if _, ok := byKey[k]; !ok {
					keys = append(keys, k)
				}
				byKey[k] = append(byKey[k], op)
			}
			sort.Strings(keys)
			out := make([][]porcupine.Operation, 0, len(keys))
			for _, k := range keys {
				out = append(out, byKey[k])
			}
			return out
		},
		Init: func() any { return init },
		Step: func(state, input, output any) (bool, any) {
			in := input.(regInput)
			if in.kind == Write {
				return true, in.value
			}
			return output.(string) == state.(string), state
		},
		DescribeOperation: func(input, output any) string {
			in := input.(regInput)
			if in.kind == Write {
				return fmt.Sprintf("write(%s, %q)", in.key, in.value)
			}
			return fmt.Sprintf("read(%s) → %q", in.key, output)
		},
	}
}

// CheckRegisters checks that ops are linearizable as registers starting at
// init. It returns porcupine's verdict and, unless Ok, a description of
// the operations of the first register that is not.
func CheckRegisters(ops []RegOp, init string, timeout time.Duration) (porcupine.CheckResult, string) {
	h := make([]porcupine.Operation, 0, len(ops))
	for _, o := range ops {
		ret := o.Return.UnixNano()
		if o.Unknown {
			ret = math.MaxInt64
		}
		h = append(h, porcupine.Operation{ClientId: o.Client, Input: regInput{o.Kind, o.Key, o.Value},
			Call: o.Call.UnixNano(), Output: o.Value, Return: ret})
	}
	res, info := porcupine.CheckOperationsVerbose(RegisterModel(init), h, timeout)
	if res == porcupine.Ok {
		return res, ""
	}
	var b strings.Builder
	if res == porcupine.Unknown {
		fmt.Fprintf(&b, "the check did not finish within %v\n", timeout)
	}
	// The longest partial linearization of each failing register shows
	// how far an order consistent with the model got.
	for pi, partial := range info.PartialLinearizationsOperations() {
		longest := 0
		for i, l := range partial {
			if len(l) > len(partial[longest]) {
				longest = i
			}
		}
		if len(partial) == 0 {
			continue
		}
		fmt.Fprintf(&b, "partition %d: longest linearizable prefix has %d operations; its last ones:\n", pi, len(partial[longest]))
		l := partial[longest]
		for _, op := range l[max(0, len(l)-8):] {
			fmt.Fprintf(&b, "  %s\n", RegisterModel(init).DescribeOperation(op.Input, op.Output))
		}
	}
	return res, b.String()
}
