package mysql

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/japanese"
	"golang.org/x/text/encoding/korean"
	"golang.org/x/text/encoding/simplifiedchinese"
	"golang.org/x/text/encoding/traditionalchinese"
	"golang.org/x/text/encoding/unicode"
	"golang.org/x/text/encoding/unicode/utf32"
)

// decoder turns a text column's bytes, as the binlog holds them (in the
// column's character set), into a UTF-8 string. nil: they are UTF-8.
type decoder func([]byte) (any, error)

// charsets are the character sets whose bytes the binlog path converts,
// by MySQL's name. MySQL's latin1 is Windows-1252.
var charsets = map[string]encoding.Encoding{
	"latin1": charmap.Windows1252, "latin2": charmap.ISO8859_2, "latin5": charmap.ISO8859_9, "latin7": charmap.ISO8859_13,
	"cp1250": charmap.Windows1250, "cp1251": charmap.Windows1251, "cp1256": charmap.Windows1256, "cp1257": charmap.Windows1257,
	"cp850": charmap.CodePage850, "cp852": charmap.CodePage852, "cp866": charmap.CodePage866,
	"greek": charmap.ISO8859_7, "hebrew": charmap.ISO8859_8, "koi8r": charmap.KOI8R, "koi8u": charmap.KOI8U,
	"macroman": charmap.Macintosh, "tis620": charmap.Windows874,
	"ucs2": unicode.UTF16(unicode.BigEndian, unicode.IgnoreBOM), "utf16": unicode.UTF16(unicode.BigEndian, unicode.IgnoreBOM),
	"utf16le": unicode.UTF16(unicode.LittleEndian, unicode.IgnoreBOM), "utf32": utf32.UTF32(utf32.BigEndian, utf32.IgnoreBOM),
	"gbk": simplifiedchinese.GBK, "gb2312": simplifiedchinese.GBK, "gb18030": simplifiedchinese.GB18030,
	"big5": traditionalchinese.Big5, "sjis": japanese.ShiftJIS, "cp932": japanese.ShiftJIS,
	"ujis": japanese.EUCJP, "eucjpms": japanese.EUCJP, "euckr": korean.EUCKR,
}

// charsetDecoder is the decoder of a character set; an error for one
// Eddy cannot convert.
func charsetDecoder(cs string) (decoder, error) {
	switch cs {
	case "utf8mb4", "utf8mb3", "utf8", "ascii":
		return nil, nil
	}
	enc, ok := charsets[strings.ToLower(cs)]
	if !ok {
		return nil, fmt.Errorf("character set %s is not one Eddy converts to UTF-8 (docs/types-mysql.md lists them): convert the column, such as to utf8mb4", cs)
	}
	return func(b []byte) (any, error) {
		out, err := enc.NewDecoder().Bytes(b)
		if err != nil {
			return nil, fmt.Errorf("convert from %s: %w", cs, err)
		}
		if !utf8.Valid(out) {
			return nil, fmt.Errorf("convert from %s: not valid UTF-8", cs)
		}
		return string(out), nil
	}, nil
}
